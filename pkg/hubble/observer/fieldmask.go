package observer

import (
	"fmt"
	"strings"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
)

// fieldMask keeps only some fields of a flow, as GetFlowsRequest.field_mask
// asks, so a client that wants three fields does not receive thirty.
type fieldMask struct{ paths [][]protoreflect.Name }

func compileFieldMask(fm *fieldmaskpb.FieldMask) (*fieldMask, error) {
	if len(fm.GetPaths()) == 0 {
		return nil, nil
	}
	if !fm.IsValid(&flowpb.Flow{}) {
		return nil, fmt.Errorf("invalid field mask %q: every path must name a field of flow.Flow", strings.Join(fm.GetPaths(), ","))
	}
	m := &fieldMask{}
	for _, p := range fm.GetPaths() {
		var path []protoreflect.Name
		for _, part := range strings.Split(p, ".") {
			path = append(path, protoreflect.Name(part))
		}
		m.paths = append(m.paths, path)
	}
	return m, nil
}

func (m *fieldMask) apply(f *flowpb.Flow) *flowpb.Flow {
	out := &flowpb.Flow{}
	for _, p := range m.paths {
		copyPath(f.ProtoReflect(), out.ProtoReflect(), p)
	}
	return out
}

// copyPath copies the field at path from src to dst. Values are shared, not
// cloned: stored flows are never modified.
func copyPath(src, dst protoreflect.Message, path []protoreflect.Name) {
	fd := src.Descriptor().Fields().ByName(path[0])
	if fd == nil || !src.Has(fd) {
		return
	}
	if len(path) == 1 || fd.Message() == nil || fd.IsList() || fd.IsMap() {
		dst.Set(fd, src.Get(fd))
		return
	}
	copyPath(src.Get(fd).Message(), dst.Mutable(fd).Message(), path[1:])
}
