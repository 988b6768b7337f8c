package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	v1 "github.com/seta-net/seta/pkg/api/v1"
	"github.com/seta-net/seta/pkg/cli/output"
	"github.com/seta-net/seta/pkg/version"
)

// versionInfo is the output of `seta version`.
type versionInfo struct {
	CLI    string `json:"cli"`
	Agent  string `json:"agent,omitempty"`
	Socket string `json:"socket,omitempty"`
}

func versionCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version of seta and of the agent it talks to",
		Long: `Prints the version of this seta binary and, if the agent answers on
--socket, the agent's version too. An agent that cannot be reached is not an
error here: the CLI's version is printed with a note on stderr.`,
		Example: `  seta version
  seta version -o json`,
		Args: cobra.NoArgs,
	}
	o := output.AddFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if _, err := output.Parse(*o); err != nil {
			return err
		}
		v := versionInfo{CLI: version.String()}
		c, err := g.client()
		if err == nil {
			var st v1.Status
			st, err = c.Status(cmd.Context())
			if err == nil {
				v.Agent, v.Socket = st.Version, c.Socket()
			}
		}
		if err != nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "note: agent version unknown: %v\n", err)
		}
		return output.Print(cmd.OutOrStdout(), *o, v, func(t *output.Tab) {
			t.Row("seta (CLI):", v.CLI)
			if v.Agent != "" {
				t.Row("seta-agent:", v.Agent+" (at "+v.Socket+")")
			}
		})
	}
	return cmd
}
