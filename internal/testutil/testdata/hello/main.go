// Command hello prints hello; testutil's Build test compiles it.
package main

import "fmt"

func main() { fmt.Println("hello") }
