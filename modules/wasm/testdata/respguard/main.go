//go:build wasip1

// Command respguard is a test plugin exercising the response phase and
// the header host functions: it copies X-Echo (request) to X-Echo-Method
// with the method, removes X-Secret, and replaces 5xx responses with 502.
package main

import (
	"strings"

	"github.com/sentinel-proxy/sentinel/examples/plugins/sdk"
)

//go:wasmexport on_request_headers
func onRequestHeaders() {
	if v, ok := sdk.GetHeader(sdk.Request, "X-Echo"); ok {
		sdk.AddHeader(sdk.Response, "X-Echo-Method", sdk.Method()+" "+v)
	}
	if _, ok := sdk.GetHeader(sdk.Request, "X-Missing"); ok {
		sdk.Block(500, "unexpected")
		return
	}
	sdk.RemoveHeader(sdk.Request, "X-Secret")
	if long, ok := sdk.GetHeader(sdk.Request, "X-Long"); ok {
		sdk.SetHeader(sdk.Request, "X-Long-Len", strings.Repeat("x", len(long)/100))
	}
	sdk.Log(sdk.LevelDebug, "debug")
	sdk.Log(sdk.LevelInfo, "info")
	sdk.Allow()
}

//go:wasmexport on_response_headers
func onResponseHeaders() {
	if strings.HasPrefix(sdk.Path(), "/panic") {
		panic("response phase")
	}
	if sdk.Status() >= 500 {
		sdk.Log(sdk.LevelWarn, "hiding upstream error")
		sdk.Block(502, "upstream error hidden\n")
		return
	}
	if strings.HasPrefix(sdk.Path(), "/redirect") {
		sdk.Redirect(0, "/elsewhere")
		return
	}
	sdk.RemoveHeader(sdk.Response, "X-Internal")
	if _, ok := sdk.GetHeader(sdk.Response, "X-Upstream"); ok {
		sdk.SetHeader(sdk.Response, "X-Seen-Upstream", "1")
	}
	sdk.Log(sdk.LevelError, "error")
}

func main() {}
