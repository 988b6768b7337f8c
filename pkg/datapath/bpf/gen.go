// Package bpf holds the compiled eBPF programs and the Go views of the
// structs and enums they share with user space. The .go and .o files beside
// this one are generated from bpf/ by bpf2go and committed, so building Seta
// needs only Go; `hack/bpf-gen.sh` regenerates them and `hack/bpf-check.sh`
// fails when they drift from the C.
//
// Only packages under pkg/datapath import this package.
package bpf

//go:generate go tool bpf2go -cc clang-19 -no-strip -target bpfel -go-package bpf -type endpoint_key -type endpoint_info -type endpoint_stats -type metrics_value -type drop_reason -type addr_family -type traffic_dir -type event_type -type datapath_event -type trace_point -type trace_reason -type policy_match_type -type monitor_aggregation -type lb_nat_key -type lb_nat_entry -type lb_nat_dir -type lb_nat_flags -type node_addr_key -type node_addr -type ct_flags -type ct_lifetime Lxc ../../../bpf/bpf_lxc.c -- -O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu -I../../../bpf
//go:generate go tool bpf2go -cc clang-19 -no-strip -target bpfel -go-package bpf Host ../../../bpf/bpf_host.c -- -O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu -I../../../bpf
//go:generate go tool bpf2go -cc clang-19 -no-strip -target bpfel -go-package bpf Netdev ../../../bpf/bpf_netdev.c -- -O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu -I../../../bpf
//go:generate go tool bpf2go -cc clang-19 -no-strip -target bpfel -go-package bpf -type lb_service_key -type lb_service_value -type lb_backend -type lb_revnat -type lb_affinity_key -type lb_affinity_value -type lb_sock_key -type lb_sock_value -type lb_flags -type lb_scope -type lb_backend_state -type lb_limits -type lb_sock_kind Sock ../../../bpf/bpf_sock.c -- -O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu -I../../../bpf

// The test harness of bpf/lib/lb.h's selection helpers (bpf/tests), loaded
// only by pkg/datapath/lb's privileged tests.
//go:generate go tool bpf2go -cc clang-19 -no-strip -target bpfel -go-package bpf -type lb_test_args -type lb_test_result LbSelftest ../../../bpf/tests/lb_selftest.c -- -O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu -I../../../bpf
