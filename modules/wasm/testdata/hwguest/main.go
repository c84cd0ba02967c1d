//go:build wasip1

// Command hwguest is an http-wasm guest for the failure tests, written
// against the raw http_handler imports. By path: /log logs "hello world"
// (info), a debug and a warn line, and writes to stdout and stderr;
// /trap-request panics in handle_request, /trap-response in
// handle_response; /loop loops in handle_request, /loop-response in
// handle_response; /answer answers 418 itself, /interim 101 and
// /interim100 100; anything else is passed on.
package main

import (
	"fmt"
	"os"
	"strings"
	"unsafe"
)

//go:wasmimport http_handler log
func logMsg(level int32, msg unsafe.Pointer, msgLen uint32)

//go:wasmimport http_handler get_uri
func getURI(buf unsafe.Pointer, bufLimit uint32) uint32

//go:wasmimport http_handler set_status_code
func setStatusCode(code uint32)

//go:wasmimport http_handler write_body
func writeBody(kind uint32, body unsafe.Pointer, bodyLen uint32)

func log(level int32, s string) {
	logMsg(level, unsafe.Pointer(unsafe.StringData(s)), uint32(len(s)))
}

var buf = make([]byte, 2048)

func uri() string {
	n := getURI(unsafe.Pointer(&buf[0]), uint32(len(buf)))
	return string(buf[:min(int(n), len(buf))])
}

const (
	ctxPlain = iota
	ctxTrapResponse
	ctxLoopResponse
)

//go:wasmexport handle_request
func handleRequest() uint64 {
	u := uri()
	switch {
	case strings.HasPrefix(u, "/log"):
		log(0, "hello world")
		log(-1, "a debug line")
		log(1, "a warn line")
		fmt.Println("to stdout")
		fmt.Fprintln(os.Stderr, "to stderr")
	case strings.HasPrefix(u, "/trap-request"):
		panic("trapped in handle_request")
	case strings.HasPrefix(u, "/trap-response"):
		return ctxTrapResponse<<32 | 1
	case strings.HasPrefix(u, "/loop-response"):
		return ctxLoopResponse<<32 | 1
	case strings.HasPrefix(u, "/loop"):
		for {
		}
	case strings.HasPrefix(u, "/interim"):
		// An informational status as the guest's own answer.
		code := uint32(101)
		if strings.HasPrefix(u, "/interim100") {
			code = 100
		}
		setStatusCode(code)
		b := "interim"
		writeBody(1, unsafe.Pointer(unsafe.StringData(b)), uint32(len(b)))
		return 0
	case strings.HasPrefix(u, "/answer"):
		setStatusCode(418)
		b := "teapot"
		writeBody(1, unsafe.Pointer(unsafe.StringData(b)), uint32(len(b)))
		return 0
	}
	return 1
}

//go:wasmexport handle_response
func handleResponse(reqCtx uint32, isError uint32) {
	switch reqCtx {
	case ctxTrapResponse:
		panic("trapped in handle_response")
	case ctxLoopResponse:
		for {
		}
	}
}

func main() {}
