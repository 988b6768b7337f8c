// Package output renders CLI results as a table, JSON or YAML, selected by
// the -o flag every listing command has.
package output

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

// Format is an output format.
type Format string

const (
	Table Format = "table"
	JSON  Format = "json"
	YAML  Format = "yaml"
)

// AddFlag registers -o/--output on cmd and returns the value holder.
func AddFlag(cmd *cobra.Command) *string {
	var s string
	cmd.Flags().StringVarP(&s, "output", "o", string(Table), "output format: table, json or yaml")
	return &s
}

// Parse validates a -o value.
func Parse(s string) (Format, error) {
	switch Format(s) {
	case Table, JSON, YAML:
		return Format(s), nil
	case "":
		return Table, nil
	}
	return "", fmt.Errorf("unknown output format %q (want table, json or yaml)", s)
}

// Print writes v as JSON or YAML, or calls table for the table format.
func Print(w io.Writer, format string, v any, table func(t *Tab)) error {
	f, err := Parse(format)
	if err != nil {
		return err
	}
	switch f {
	case JSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case YAML:
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	t := &Tab{tw: tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)}
	table(t)
	return t.tw.Flush()
}

// Tab is an aligned table.
type Tab struct{ tw *tabwriter.Writer }

// Row writes one row; cells are formatted with %v.
func (t *Tab) Row(cells ...any) {
	s := make([]string, len(cells))
	for i, c := range cells {
		s[i] = fmt.Sprint(c)
		if s[i] == "" {
			s[i] = "-"
		}
	}
	fmt.Fprintln(t.tw, strings.Join(s, "\t"))
}
