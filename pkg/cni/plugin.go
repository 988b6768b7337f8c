// Package cni is the seta-cni plugin: it turns CNI ADD, DEL, CHECK, STATUS
// and GC calls from a container runtime into requests to the node's
// seta-agent, which does the actual work. The plugin keeps no state.
//
// Supported spec versions: 0.3.0, 0.3.1, 0.4.0, 1.0.0 and 1.1.0. Results are
// converted to the version the runtime asked for.
package cni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	v1 "github.com/seta-net/seta/pkg/api/v1"
	"github.com/seta-net/seta/pkg/client"
	"github.com/seta-net/seta/pkg/config"
	"github.com/seta-net/seta/pkg/endpoint"
	setaversion "github.com/seta-net/seta/pkg/version"
)

// Plugin-specific error codes (the spec reserves 100 and up for plugins).
const (
	ErrIPAMExhausted   uint = 100
	ErrAddressConflict uint = 101
	ErrAlreadyAttached uint = 102
	ErrEndpointLimit   uint = 103
	ErrDatapath        uint = 110
)

// NetConf is seta-cni's network configuration.
type NetConf struct {
	types.NetConf
	// Socket is the agent's API socket; default /var/run/seta/agent.sock.
	Socket string `json:"socket,omitempty"`
	// TimeoutSeconds bounds each call to the agent; default 30.
	TimeoutSeconds int `json:"timeoutSeconds,omitempty"`
	// Args carries runtime-supplied labels, per the CNI conventions:
	// "args": {"cni": {"labels": [{"key": "app", "value": "web"}]}}.
	Args *struct {
		CNI *struct {
			Labels []struct {
				Key   string `json:"key"`
				Value string `json:"value"`
			} `json:"labels,omitempty"`
		} `json:"cni,omitempty"`
	} `json:"args,omitempty"`
}

// K8sArgs are the CNI_ARGS Kubernetes runtimes pass.
type K8sArgs struct {
	types.CommonArgs
	K8S_POD_NAME               types.UnmarshallableString //nolint:revive // names fixed by the runtime
	K8S_POD_NAMESPACE          types.UnmarshallableString //nolint:revive
	K8S_POD_INFRA_CONTAINER_ID types.UnmarshallableString //nolint:revive
	K8S_POD_UID                types.UnmarshallableString //nolint:revive
}

// About is printed for CNI VERSION without config and for --help.
func About() string {
	return "seta-cni " + setaversion.String() + ": Seta CNI plugin (delegates to seta-agent)"
}

// Funcs returns the plugin's entry points for skel.
func Funcs() skel.CNIFuncs {
	return skel.CNIFuncs{Add: cmdAdd, Del: cmdDel, Check: cmdCheck, Status: cmdStatus, GC: cmdGC}
}

// Versions are the spec versions the plugin supports.
func Versions() version.PluginInfo {
	return version.PluginSupports("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
}

// ParseConf decodes and validates the network configuration.
func ParseConf(stdin []byte) (*NetConf, error) {
	conf := &NetConf{}
	if err := json.Unmarshal(stdin, conf); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "seta-cni: cannot decode network configuration", err.Error())
	}
	if conf.Name == "" {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, "seta-cni: network configuration has no \"name\"", "")
	}
	if conf.CNIVersion == "" {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, "seta-cni: network configuration has no \"cniVersion\"", "")
	}
	if conf.Socket == "" {
		conf.Socket = config.DefaultAPISocket
	}
	if !filepath.IsAbs(conf.Socket) {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf("seta-cni: \"socket\" must be an absolute path, got %q", conf.Socket), "")
	}
	if conf.TimeoutSeconds < 0 || conf.TimeoutSeconds > 600 {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf("seta-cni: \"timeoutSeconds\" must be 0 to 600, got %d", conf.TimeoutSeconds), "")
	}
	if conf.TimeoutSeconds == 0 {
		conf.TimeoutSeconds = 30
	}
	if conf.Args != nil && conf.Args.CNI != nil {
		for _, l := range conf.Args.CNI.Labels {
			if l.Key == "" || strings.ContainsAny(l.Key, "=\n") || strings.ContainsAny(l.Value, "\n") {
				return nil, types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf("seta-cni: bad label %q=%q in args.cni.labels", l.Key, l.Value), "")
			}
		}
	}
	return conf, nil
}

func (c *NetConf) client() *client.Client {
	return client.New(c.Socket, time.Duration(c.TimeoutSeconds)*time.Second)
}

func (c *NetConf) labels() []string {
	if c.Args == nil || c.Args.CNI == nil {
		return nil
	}
	out := make([]string, 0, len(c.Args.CNI.Labels))
	for _, l := range c.Args.CNI.Labels {
		out = append(out, l.Key+"="+l.Value)
	}
	return out
}

func loadK8sArgs(args string) (*K8sArgs, error) {
	k := &K8sArgs{}
	if err := types.LoadArgs(args, k); err != nil {
		return nil, types.NewError(types.ErrInvalidEnvironmentVariables, "seta-cni: cannot parse CNI_ARGS", err.Error())
	}
	return k, nil
}

// agentError turns a client error into a CNI error.
func agentError(op string, err error) error {
	if errors.Is(err, client.ErrUnreachable) {
		return types.NewError(types.ErrTryAgainLater, "seta-cni: "+op+": "+err.Error(), "")
	}
	var ae *v1.Error
	if !errors.As(err, &ae) {
		return types.NewError(types.ErrInternal, "seta-cni: "+op+" failed", err.Error())
	}
	code := types.ErrInternal
	switch ae.Code {
	case v1.CodeInvalid:
		code = types.ErrInvalidNetworkConfig
	case v1.CodeNetNSNotFound:
		code = types.ErrInvalidNetNS
	case v1.CodeBusy:
		code = types.ErrTryAgainLater
	case v1.CodeIPAMExhausted:
		code = ErrIPAMExhausted
	case v1.CodeIPAMConflict:
		code = ErrAddressConflict
	case v1.CodeExists:
		code = ErrAlreadyAttached
	case v1.CodeLimit:
		code = ErrEndpointLimit
	case v1.CodeDatapath:
		code = ErrDatapath
	case v1.CodeNotFound:
		code = types.ErrUnknownContainer
	}
	return types.NewError(code, "seta-cni: "+op+": "+ae.Message, "")
}

func cmdAdd(args *skel.CmdArgs) error {
	conf, err := ParseConf(args.StdinData)
	if err != nil {
		return err
	}
	k8s, err := loadK8sArgs(args.Args)
	if err != nil {
		return err
	}
	if args.Netns == "" {
		return types.NewError(types.ErrInvalidNetNS, "seta-cni: ADD needs CNI_NETNS", "")
	}
	ctx := context.Background()
	ep, err := conf.client().CreateEndpoint(ctx, endpoint.CreateRequest{
		ContainerID: args.ContainerID, IfName: args.IfName, NetNS: args.Netns,
		Network: conf.Name, PodName: string(k8s.K8S_POD_NAME), Namespace: string(k8s.K8S_POD_NAMESPACE),
		Labels: conf.labels(),
	})
	if err != nil {
		return agentError("add", err)
	}
	res := resultFor(&ep, args.Netns)
	return types.PrintResult(res, conf.CNIVersion)
}

// resultFor builds the CNI result of an endpoint: the host-side veth, the
// container interface, one IP per family with its gateway, default routes.
func resultFor(ep *endpoint.Endpoint, netns string) *current.Result {
	idx := 1
	res := &current.Result{
		CNIVersion: current.ImplementedSpecVersion,
		Interfaces: []*current.Interface{
			{Name: ep.HostIfName, Mac: ep.HostMAC, Mtu: ep.MTU},
			{Name: ep.IfName, Mac: ep.PodMAC, Mtu: ep.MTU, Sandbox: netns},
		},
	}
	for _, p := range []struct{ ip, gw netip.Addr }{{ep.IPv4, ep.GatewayV4}, {ep.IPv6, ep.GatewayV6}} {
		if !p.ip.IsValid() {
			continue
		}
		bits := p.ip.BitLen()
		res.IPs = append(res.IPs, &current.IPConfig{
			Interface: &idx,
			Address:   net.IPNet{IP: p.ip.AsSlice(), Mask: net.CIDRMask(bits, bits)},
			Gateway:   p.gw.AsSlice(),
		})
		res.Routes = append(res.Routes, &types.Route{
			Dst: net.IPNet{IP: make(net.IP, bits/8), Mask: net.CIDRMask(0, bits)},
			GW:  p.gw.AsSlice(),
		})
	}
	return res
}

func cmdDel(args *skel.CmdArgs) error {
	conf, err := ParseConf(args.StdinData)
	if err != nil {
		return err
	}
	// DEL must succeed when there is nothing to delete: an unknown
	// container, a repeated DEL, a netns that is already gone.
	err = conf.client().DeleteAttachment(context.Background(), args.ContainerID, args.IfName)
	if err == nil || client.IsCode(err, v1.CodeNotFound) {
		return nil
	}
	return agentError("del", err)
}

func cmdCheck(args *skel.CmdArgs) error {
	conf, err := ParseConf(args.StdinData)
	if err != nil {
		return err
	}
	if err := version.ParsePrevResult(&conf.NetConf); err != nil {
		return types.NewError(types.ErrDecodingFailure, "seta-cni: cannot decode prevResult", err.Error())
	}
	ctx := context.Background()
	c := conf.client()
	ep, ok, err := c.LookupEndpoint(ctx, args.ContainerID, args.IfName)
	if err != nil {
		return agentError("check", err)
	}
	if !ok {
		return types.NewError(types.ErrUnknownContainer,
			fmt.Sprintf("seta-cni: check: no endpoint for container %s interface %s", args.ContainerID, args.IfName), "")
	}
	if args.Netns != "" && args.Netns != ep.NetNS {
		return types.NewError(types.ErrInvalidNetNS,
			fmt.Sprintf("seta-cni: check: endpoint is in netns %s, runtime says %s", ep.NetNS, args.Netns), "")
	}
	if conf.PrevResult != nil {
		prev, err := current.NewResultFromResult(conf.PrevResult)
		if err != nil {
			return types.NewError(types.ErrDecodingFailure, "seta-cni: cannot convert prevResult", err.Error())
		}
		want := map[string]bool{}
		for _, a := range ep.Addrs() {
			want[a.String()] = true
		}
		for _, ipc := range prev.IPs {
			if !want[ipc.Address.IP.String()] {
				return types.NewError(types.ErrInternal,
					fmt.Sprintf("seta-cni: check: prevResult address %s is not the endpoint's (%v)", ipc.Address.IP, ep.Addrs()), "")
			}
		}
	}
	res, err := c.CheckEndpoint(ctx, ep.ID)
	if err != nil {
		return agentError("check", err)
	}
	if !res.OK {
		return types.NewError(ErrDatapath, "seta-cni: check: endpoint "+fmt.Sprint(ep.ID)+" is not as set up",
			strings.Join(res.Problems, "; "))
	}
	return nil
}

func cmdStatus(args *skel.CmdArgs) error {
	conf, err := ParseConf(args.StdinData)
	if err != nil {
		return err
	}
	if _, err := conf.client().Health(context.Background()); err != nil {
		return types.NewError(types.ErrPluginNotAvailable, "seta-cni: status: seta-agent is not ready: "+err.Error(), "")
	}
	return nil
}

func cmdGC(args *skel.CmdArgs) error {
	conf, err := ParseConf(args.StdinData)
	if err != nil {
		return err
	}
	req := v1.GCRequest{Network: conf.Name, ValidAttachments: []endpoint.Attachment{}}
	for _, a := range conf.ValidAttachments {
		req.ValidAttachments = append(req.ValidAttachments, endpoint.Attachment{ContainerID: a.ContainerID, IfName: a.IfName})
	}
	if _, err := conf.client().GC(context.Background(), req); err != nil {
		return agentError("gc", err)
	}
	return nil
}
