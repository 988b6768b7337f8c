package service

import (
	"slices"
	"strings"
)

// Maglev lookup tables (Eisenbud et al., "Maglev: A Fast and Reliable
// Software Network Load Balancer", NSDI 2016, section 3.4), in Cilium's
// variant: every backend has a permutation of the table's slots given by
//
//	offset = h1(name) mod M
//	skip   = h2(name) mod (M-1) + 1
//	perm_j = (offset + j*skip) mod M
//
// and the backends take turns claiming the next free slot of their own
// permutation until the table is full. M is prime, so every skip is coprime
// with it and every permutation visits every slot. Each backend ends up
// with M/N slots (rounded either way), and removing one backend moves few
// slots of the others, so connections hashed by every node agree on a
// backend and mostly keep it when the set changes.
//
// The hashes must be the same on every node and in every agent version:
// the point of Maglev is that every node picks the same backend for a flow
// (an ECMP change upstream then does not break it). Changing them
// reshuffles every table at upgrade.

// Seeds of the two hashes (fixed: see above). Any two distinct values give
// independent hashes; these spell "seta-mg1" and "seta-mg2".
const (
	maglevSeedOffset uint64 = 0x736574612d6d6731
	maglevSeedSkip   uint64 = 0x736574612d6d6732
)

// maglevHash is 64-bit FNV-1a over the seed's eight bytes and then s,
// finished with the SplitMix64 mixer. FNV alone spreads short, similar
// strings ("10.0.0.1:80", "10.0.0.2:80") poorly over its low bits, which
// the modulo keeps; the mixer makes every input bit reach every output bit.
func maglevHash(seed uint64, s string) uint64 {
	const (
		offset64 = 14695981039346656037
		prime64  = 1099511628211
	)
	h := uint64(offset64)
	for i := 0; i < 8; i++ {
		h ^= (seed >> (8 * i)) & 0xff
		h *= prime64
	}
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= prime64
	}
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}

// MaglevTable fills a lookup table of m slots (m prime) for the backends
// named names (their address strings, unique) and returns, for every
// slot, the index of its backend in names. The result does not depend on
// the order of names: the backends take their turns in the order of their
// names. No backends give nil.
func MaglevTable(names []string, m int) []int {
	n := len(names)
	if n == 0 || m < 2 {
		return nil
	}
	// Turn order by name, so the table is a function of the set.
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(names[a], names[b]) })

	M := uint64(m)
	offset := make([]uint64, n)
	skip := make([]uint64, n)
	next := make([]uint64, n)
	for i, name := range names {
		offset[i] = maglevHash(maglevSeedOffset, name) % M
		skip[i] = maglevHash(maglevSeedSkip, name)%(M-1) + 1
	}
	table := make([]int, m)
	for i := range table {
		table[i] = -1
	}
	filled := 0
	for {
		for _, i := range order {
			c := (offset[i] + next[i]*skip[i]) % M
			for table[c] >= 0 {
				next[i]++
				c = (offset[i] + next[i]*skip[i]) % M
			}
			table[c] = i
			next[i]++
			if filled++; filled == m {
				return table
			}
		}
	}
}
