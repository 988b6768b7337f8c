package daemon

import (
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/seta-net/seta/pkg/enforcer"
	"github.com/seta-net/seta/pkg/policy/api"
)

// policyDirInterval is how often the policy directory is read again.
const policyDirInterval = 2 * time.Second

// watchPolicyDir keeps the policies of dir applied: files ending in .yaml,
// .yml or .json are parsed together; when their content changes, the new
// set is imported and policies that left the directory are deleted. A
// directory with any invalid file is not applied (the error is logged) and
// the last good set stays in force.
func watchPolicyDir(ctx context.Context, log *slog.Logger, dir string, pol *enforcer.Enforcer) {
	log = log.With("subsys", "policy-dir", "dir", dir)
	var lastSum [32]byte
	var applied []string
	for {
		sum, ps, err := readPolicyDir(dir)
		switch {
		case err != nil && sum != lastSum:
			log.Error("Not applying the policy directory", "error", err)
			lastSum = sum
		case err == nil && sum != lastSum:
			lastSum = sum
			keys := make([]string, 0, len(ps))
			for _, p := range ps {
				keys = append(keys, p.Key())
			}
			var gone []string
			for _, k := range applied {
				if !slices.Contains(keys, k) {
					gone = append(gone, k)
				}
			}
			if len(ps) > 0 {
				if _, err := pol.Import(ps); err != nil {
					log.Error("Importing the policy directory failed", "error", err)
					break
				}
			}
			if len(gone) > 0 {
				if _, err := pol.Delete(gone...); err != nil {
					log.Warn("Deleting policies that left the directory failed", "error", err)
				}
			}
			applied = keys
			log.Info("Applied the policy directory", "policies", len(keys), "removed", len(gone))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(policyDirInterval):
		}
	}
}

func readPolicyDir(dir string) ([32]byte, []*api.Policy, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return sha256.Sum256([]byte(err.Error())), nil, err
	}
	h := sha256.New()
	var all []*api.Policy
	var errs []error
	for _, e := range ents {
		name := e.Name()
		ext := strings.ToLower(filepath.Ext(name))
		if e.IsDir() || strings.HasPrefix(name, ".") || (ext != ".yaml" && ext != ".yml" && ext != ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		h.Write([]byte(name))
		h.Write(b)
		ps, err := api.Parse(b, name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		all = append(all, ps...)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	seen := map[string]string{}
	for _, p := range all {
		if prev, dup := seen[p.Key()]; dup {
			errs = append(errs, errors.New(p.Key()+" is defined in both "+prev+" and "+p.Source))
		}
		seen[p.Key()] = p.Source
	}
	return sum, all, errors.Join(errs...)
}
