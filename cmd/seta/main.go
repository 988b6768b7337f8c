// Command seta is Seta's command-line tool: it inspects a node's agent and
// datapath and runs local lab clusters. See pkg/cli.
package main

import (
	"os"

	"github.com/seta-net/seta/pkg/cli"
)

func main() { os.Exit(cli.Main()) }
