// Command seta-nettool is the traffic tool run inside lab pods by the demo
// and by the end-to-end tests: an echo server (TCP, UDP, HTTP) and the
// clients that probe it. See package nettool for the details.
package main

import (
	"os"

	"github.com/seta-net/seta/pkg/nettool"
)

func main() {
	os.Exit(nettool.Main(os.Args[1:], os.Stdout, os.Stderr))
}
