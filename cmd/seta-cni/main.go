// Command seta-cni is Seta's CNI plugin; container runtimes exec it. See pkg/cni.
package main

import (
	"runtime"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/seta-net/seta/pkg/cni"
)

// The plugin makes no namespace switches itself (the agent does), but keep
// the main goroutine on one OS thread as CNI plugins conventionally do, so
// nothing it calls can leave the process on a thread in another netns.
func init() { runtime.LockOSThread() }

func main() { skel.PluginMainFuncs(cni.Funcs(), cni.Versions(), cni.About()) }
