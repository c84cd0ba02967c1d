//go:build wasip1

// Command respbody is a test plugin with only on_response_body: on
// /trap it panics, a body containing "upstream" is replaced by a 451
// answering the body's length and the status it saw.
package main

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/sentinel-proxy/sentinel/examples/plugins/sdk"
)

//go:wasmexport on_response_body
func onResponseBody() {
	if strings.HasPrefix(sdk.Path(), "/trap") {
		panic("trapped in on_response_body")
	}
	body, ok := sdk.Body()
	if ok && bytes.Contains(body, []byte("upstream")) {
		sdk.Block(451, "len="+strconv.Itoa(len(body))+" status="+strconv.Itoa(sdk.Status()))
	}
}

func main() {}
