package cli

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	v1 "github.com/seta-net/seta/pkg/api/v1"
	"github.com/seta-net/seta/pkg/cli/output"
	"github.com/seta-net/seta/pkg/client"
)

func identityCmd(g *globals) *cobra.Command {
	cmd := group(&cobra.Command{
		Use:     "identity",
		Aliases: []string{"id"},
		Short:   "Inspect security identities: the label sets policies match",
		Long: `A security identity is a number that stands for a set of security labels:
the labels of a pod (with their source, k8s:app=web) and its namespace.
Endpoints with the same labels share an identity; the datapath matches policy
peers by identity. Reserved identities (below 256) stand for the host, the
world outside the cluster and the like; CIDR rules get identities of their
own. REFS counts the endpoints (and rules) that use an identity.`,
		Example: `  seta identity list
  seta identity get 256
  seta identity list -o json`,
	})
	cmd.AddCommand(identityListCmd(g), identityGetCmd(g))
	return cmd
}

func identityListCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the security identities the agent knows",
		Long: `Lists the agent's security identities with their labels and how many users
each has. -o json and -o yaml print the full records.`,
		Example: `  seta identity list
  seta identity ls -o yaml`,
		Args: cobra.NoArgs,
	}
	o := output.AddFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if _, err := output.Parse(*o); err != nil {
			return err
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		ids, err := c.ListIdentities(cmd.Context())
		if err != nil {
			return err
		}
		if ids == nil {
			ids = []v1.IdentityInfo{}
		}
		slices.SortFunc(ids, func(a, b v1.IdentityInfo) int {
			switch {
			case a.ID < b.ID:
				return -1
			case a.ID > b.ID:
				return 1
			}
			return 0
		})
		return output.Print(cmd.OutOrStdout(), *o, ids, func(t *output.Tab) {
			t.Row("ID", "LABELS", "REFS")
			for _, id := range ids {
				t.Row(id.ID, strings.Join(id.Labels, ","), id.RefCount)
			}
		})
	}
	return cmd
}

func identityGetCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "get ID",
		Short: "Show one security identity",
		Long: `Shows one security identity: its labels, how many users it has, whether it is
reserved, and since when it has been unused (an unused identity is kept for
a while, so that a pod that comes back gets the same number).`,
		Example: `  seta identity get 256
  seta identity get 1 -o json`,
		Args: cobra.ExactArgs(1),
	}
	o := output.AddFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if _, err := output.Parse(*o); err != nil {
			return err
		}
		n, err := strconv.ParseUint(args[0], 10, 32)
		if err != nil || n == 0 {
			return fmt.Errorf("invalid identity %q: it is a number from 1 to 4294967295 (the ID column of 'seta identity list')", args[0])
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		id, err := c.GetIdentity(cmd.Context(), uint32(n))
		if client.IsCode(err, v1.CodeNotFound) {
			return fmt.Errorf("%w (see 'seta identity list' for the identities that exist)", err)
		}
		if err != nil {
			return err
		}
		return output.Print(cmd.OutOrStdout(), *o, id, func(t *output.Tab) {
			t.Row("ID:", id.ID)
			t.Row("Labels:", strings.Join(id.Labels, ","))
			t.Row("References:", id.RefCount)
			t.Row("Reserved:", yesNo(id.Reserved))
			t.Row("Unused since:", id.UnusedSince)
		})
	}
	return cmd
}
