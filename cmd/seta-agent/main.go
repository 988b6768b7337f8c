// Command seta-agent is Seta's per-node agent. See pkg/daemon.
package main

import (
	"os"

	"github.com/seta-net/seta/pkg/daemon"
)

func main() { os.Exit(daemon.Main()) }
