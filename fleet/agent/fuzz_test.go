package agent_test

import (
	"fmt"
	"net"
	"path"
	"runtime"
	"sort"
	"strings"
	"sync/atomic"
	"testing"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/agent"
	"github.com/flotilla-dev/flotilla/internal/git"
)

// memTree is a repository in memory for the render fuzzer.
type memTree map[string]string

func (m memTree) Files() []string {
	out := make([]string, 0, len(m))
	for f := range m {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

func (m memTree) IsSymlink(string) bool { return false }

func (m memTree) ReadFile(p string) ([]byte, error) {
	if s, ok := m[p]; ok {
		return []byte(s), nil
	}
	return nil, fmt.Errorf("%s: no such file", p)
}

func (m memTree) Resolve(p string) (string, git.Kind, error) {
	if _, ok := m[p]; ok {
		return p, git.KindFile, nil
	}
	for f := range m {
		if p == "" || p == "." || strings.HasPrefix(f, p+"/") {
			return p, git.KindDir, nil
		}
	}
	return "", 0, fmt.Errorf("%s: not found", p)
}

// FuzzRender feeds generated kustomizations, manifests and inline patches
// to the agent's render, as the render sandbox runs it (network blocked):
// it must never panic, never reach the network (a listener counts every
// connection; the seeds point kustomize fields at it), and never hold more
// than its budget of memory.
func FuzzRender(f *testing.F) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	defer ln.Close()
	var dials atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			dials.Add(1)
			_ = c.Close()
		}
	}()
	url := "http://" + ln.Addr().String()
	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {k: v}\n"
	for _, k := range []string{
		"resources: [cm.yaml]\n",
		"resources: [cm.yaml]\nconfigMapGenerator: [{name: x, env: URL/env}]\n",
		"resources: [cm.yaml]\nconfigMapGenerator: [{name: x, files: [URL/f]}]\n",
		"resources: [URL/cm.yaml]\n",
		"resources: [cm.yaml]\npatchesJson6902: [{target: {version: v1, kind: ConfigMap, name: a}, path: URL/p}]\n",
		"resources: [cm.yaml]\ntransformers: [URL/t.yaml]\n",
		"resources: [cm.yaml]\nopenapi: {path: URL/s.json}\n",
		"resources: [cm.yaml]\ncomponents: [URL/c]\n",
		"resources: [../../etc]\n",
		"resources: [cm.yaml]\nnamePrefix: p-\ncommonLabels: {a: b}\n",
	} {
		f.Add(strings.ReplaceAll(k, "URL", url), cm, "")
	}
	f.Add("resources: [cm.yaml]\n", "a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n", "")
	f.Add("resources: [cm.yaml]\n", cm, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {k: patched}\n")

	f.Fuzz(func(t *testing.T, kustomization, manifest, patch string) {
		restore := agent.BlockNetwork()
		defer restore()
		tree := memTree{path.Join("app", "kustomization.yaml"): kustomization, path.Join("app", "cm.yaml"): manifest, "base/cm.yaml": cm}
		src := flotillav1.ApplicationSource{Path: "app"}
		if patch != "" {
			src.Kustomize = &flotillav1.KustomizeSource{Patches: []flotillav1.KustomizePatch{{Patch: patch}}}
		}
		_, _ = agent.Render(tree, src, agent.RenderOptions{MaxObjects: 500})
		if n := dials.Load(); n > 0 {
			t.Fatalf("the render reached the network (%d connections)", n)
		}
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		if m.HeapAlloc > agent.DefaultRenderMemory {
			t.Fatalf("the render holds %d MiB, over the sandbox's %d MiB budget", m.HeapAlloc>>20, agent.DefaultRenderMemory>>20)
		}
	})
}
