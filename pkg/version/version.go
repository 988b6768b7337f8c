// Package version reports the build's version.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is set at link time (-ldflags "-X github.com/seta-net/seta/pkg/version.Version=v0.1.0");
// otherwise it is taken from the VCS information Go embeds.
var Version = ""

// String returns "VERSION (commit, go version)".
func String() string {
	v, rev, dirty := Version, "unknown", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
				if len(rev) > 12 {
					rev = rev[:12]
				}
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "-dirty"
				}
			}
		}
		if v == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
	}
	if v == "" {
		v = "v0.1.0-dev"
	}
	return fmt.Sprintf("%s (commit %s%s, %s)", v, rev, dirty, runtime.Version())
}
