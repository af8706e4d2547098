package applied_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/flotilla-dev/flotilla/fleet/agent/applied"
)

func ref(name, uid string) applied.Ref {
	return applied.Ref{Version: "v1", Kind: "ConfigMap", Namespace: "ns", Name: name, UID: uid}
}

func keys(refs []applied.Ref) []string {
	out := []string{}
	for _, r := range refs {
		out = append(out, r.Name+"@"+r.UID)
	}
	return out
}

func TestDiff(t *testing.T) {
	cases := []struct {
		name                  string
		prev, wanted, present []applied.Ref
		next, gone            []string
	}{
		{name: "first sync records what exists",
			wanted: []applied.Ref{ref("a", ""), ref("b", "")}, present: []applied.Ref{ref("a", "1"), ref("b", "2")},
			next: []string{"a@1", "b@2"}, gone: []string{}},
		{name: "an object that left Git is gone",
			prev: []applied.Ref{ref("a", "1"), ref("old", "9")}, wanted: []applied.Ref{ref("a", "")}, present: []applied.Ref{ref("a", "1")},
			next: []string{"a@1"}, gone: []string{"old@9"}},
		{name: "a wanted object not applied now stays recorded",
			prev: []applied.Ref{ref("a", "1"), ref("b", "2")}, wanted: []applied.Ref{ref("a", ""), ref("b", "")}, present: []applied.Ref{ref("a", "1")},
			next: []string{"a@1", "b@2"}, gone: []string{}},
		{name: "a recreated object is recorded with its new UID",
			prev: []applied.Ref{ref("a", "1")}, wanted: []applied.Ref{ref("a", "")}, present: []applied.Ref{ref("a", "5")},
			next: []string{"a@5"}, gone: []string{}},
		{name: "nothing wanted: everything recorded is gone",
			prev: []applied.Ref{ref("a", "1"), ref("b", "2")},
			next: []string{}, gone: []string{"a@1", "b@2"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			next, gone := applied.Diff(tc.prev, tc.wanted, tc.present)
			applied.Sort(next)
			assert.Equal(t, tc.next, keys(next), "next")
			assert.Equal(t, tc.gone, keys(gone), "gone")
		})
	}
}
