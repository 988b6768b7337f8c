package datapath

import "fmt"

// The policy revision (seta_policy_rev, bpf/lib/enforce.h) lets the
// forward packets of an established connection skip policy: its conntrack
// entry records the revision policy last allowed it under, and it is
// checked again once the revision moved on. So every write that can change
// a verdict bumps the revision once the write is done: the policy map
// (WritePolicy), the ipcache (SyncIPCache), the endpoints map (an
// endpoint's identity, its audit and "open" flags, its addition and
// removal). Each of those methods bumps after its own writes returned, so
// when a change takes several calls (the enforcer regenerating endpoints),
// the bump of its last call follows all of its writes. A packet reads the
// revision before it looks up policy: one that read the new revision
// checks maps whose writes completed before it was written; one that read
// the old revision records the old one, which is no longer current, so the
// connection's next packet is checked again. Intermediate bumps only cost
// an extra check per connection.

// bumpPolicyRev makes the writes before it count for established
// connections: their next forward packet is checked against policy.
func (d *Datapath) bumpPolicyRev() error {
	d.revMu.Lock()
	defer d.revMu.Unlock()
	if _, err := d.objs.PolicyRev.Bump(); err != nil {
		return fmt.Errorf("policy revision: %w", err)
	}
	return nil
}

// PolicyRevision is the datapath's current policy revision.
func (d *Datapath) PolicyRevision() (uint32, error) { return d.objs.PolicyRev.Get() }
