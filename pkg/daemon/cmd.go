package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/seta-net/seta/pkg/config"
	"github.com/seta-net/seta/pkg/version"
)

// Command returns the seta-agent root command.
func Command() *cobra.Command {
	var flags *config.Flags
	cmd := &cobra.Command{
		Use:   "seta-agent",
		Short: "Seta node agent: endpoints, IPAM and the eBPF datapath of one node",
		Long: `seta-agent runs on every node. It owns the node's pod address ranges, creates
the network interface of every pod when the container runtime calls the
seta-cni plugin, and loads the eBPF programs that forward pod traffic.

It serves a JSON API on a unix socket (--api-socket) that seta-cni and the
seta CLI use. On SIGTERM it stops serving but leaves the datapath running;
a restarted agent restores its endpoints from --state-dir and the maps
pinned under --bpf-root without interrupting established connections.

Example:
  seta-agent --node-name node1 --ipv4-pod-cidr 10.200.1.0/24 \
    --ipv6-pod-cidr fd00:5e7a:0:1::/64`,
		Version:       version.String(),
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := flags.Config()
			if err != nil {
				return err
			}
			level, _ := config.ParseLogLevel(cfg.LogLevel)
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return Run(ctx, log, cfg)
		},
	}
	flags = config.NewFlags(cmd.Flags())
	return cmd
}

// Main runs the agent command and returns the process exit code.
func Main() int {
	if err := Command().ExecuteContext(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "seta-agent:", err)
		return 1
	}
	return 0
}
