/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* A test harness for the selection helpers of lib/lb.h, not attached
 * anywhere: a BPF_PROG_TYPE_SYSCALL program that pkg/datapath/lb's
 * privileged tests run with BPF_PROG_RUN against maps they fill. It lets
 * the kernel verify and run the paths the socket programs do not take (the
 * Maglev table, affinity by client address), as the tc programs do. */

#include "lib/common.h"
#include "lib/lb.h"

char __license[] SEC("license") = "Dual BSD/GPL";

/* The program's context: what a translating program knows of a flow, and
 * what the helpers made of it. */
struct lb_test_args {
	struct lb_service_key key; /* in: address, port, proto, family */
	__u8  client[16];          /* in: the client's address (affinity) */
	__u32 hash;                /* in: the flow hash (Maglev) */
	__u8  internal;            /* in: traffic from inside the node */
	__u8  maglev;              /* in: select with the Maglev table if the service has one */
	__u8  scope;               /* out: the scope of the entry that served */
	__u8  pad;
	__u32 backend_id;          /* out */
	__u16 rev_nat_id;          /* out */
	__s16 result;              /* out: LB_TEST_* */
};

enum lb_test_result {
	LB_TEST_OK         = 0,
	LB_TEST_NO_SERVICE = 1,
	LB_TEST_NO_BACKEND = 2,
};

/* Keeps the enum in BTF for bpf2go (the args struct is there already, as
 * the program's parameter). */
struct lb_test_shared {
	enum lb_test_result result;
};
const volatile struct lb_test_shared seta_lb_test_shared __attribute__((used));

SEC("syscall")
int lb_test_select(struct lb_test_args *a)
{
	struct lb_service_key key = a->key;
	const struct lb_service_value *svc;
	struct lb_affinity_key client;
	struct lb_backend *b;
	__u32 id = 0;

	svc = lb_lookup_service(&key, a->internal);
	if (!svc) {
		a->result = LB_TEST_NO_SERVICE;
		return 0;
	}
	a->scope = key.scope;
	a->rev_nat_id = svc->rev_nat_id;
	lb_affinity_client_addr(&client, a->client, key.family);
	b = lb_select_backend(&key, svc, &client, a->maglev, a->hash, &id);
	a->backend_id = id;
	a->result = b ? LB_TEST_OK : LB_TEST_NO_BACKEND;
	return 0;
}
