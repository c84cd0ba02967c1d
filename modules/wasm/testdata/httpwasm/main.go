//go:build wasip1

// Command httpwasm is an http-wasm ABI guest, written against the raw
// http_handler imports: it sets the response header X-Http-Wasm: yes.
package main

import "unsafe"

//go:wasmimport http_handler set_header_value
func setHeaderValue(kind uint32, name unsafe.Pointer, nameLen uint32, value unsafe.Pointer, valueLen uint32)

const headerKindResponse = 1

var name, value = "X-Http-Wasm", "yes"

//go:wasmexport handle_request
func handleRequest() uint64 {
	setHeaderValue(headerKindResponse, unsafe.Pointer(unsafe.StringData(name)), uint32(len(name)),
		unsafe.Pointer(unsafe.StringData(value)), uint32(len(value)))
	return 1 // next = 1: call the next handler, reqCtx = 0
}

//go:wasmexport handle_response
func handleResponse(reqCtx uint32, isError uint32) {}

func main() {}
