// Package helmtest serves Helm charts for tests, on 127.0.0.1: a Helm
// HTTP repository (index.yaml and archives, optional basic auth and TLS)
// and an OCI registry (go-containerregistry's, optional basic auth) that
// charts are pushed to with Helm's own registry client. Charts are
// packaged with the Helm SDK.
package helmtest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/registry"
	"helm.sh/helm/v3/pkg/repo"
	"sigs.k8s.io/yaml"
)

// Chart describes a chart to package.
type Chart struct {
	Name, Version string
	// Templates, CRDs and Files are file name → content (templates/x.yaml, crds/y.yaml, any other file).
	Templates, CRDs, Files map[string]string
	// Values is values.yaml.
	Values string
}

// Package builds the chart's .tgz with the Helm SDK.
func Package(t testing.TB, c Chart) []byte {
	t.Helper()
	ch := &chart.Chart{Metadata: &chart.Metadata{APIVersion: chart.APIVersionV2, Name: c.Name, Version: c.Version, Type: "application"}}
	for name, body := range c.Templates {
		ch.Templates = append(ch.Templates, &chart.File{Name: "templates/" + name, Data: []byte(body)})
	}
	for name, body := range c.CRDs {
		ch.Files = append(ch.Files, &chart.File{Name: "crds/" + name, Data: []byte(body)})
	}
	for name, body := range c.Files {
		ch.Files = append(ch.Files, &chart.File{Name: name, Data: []byte(body)})
	}
	if c.Values != "" {
		vals, err := chartutil.ReadValues([]byte(c.Values))
		if err != nil {
			t.Fatalf("helmtest: values of %s: %v", c.Name, err)
		}
		ch.Values = vals
		ch.Raw = append(ch.Raw, &chart.File{Name: "values.yaml", Data: []byte(c.Values)})
	}
	dir := t.TempDir()
	path, err := chartutil.Save(ch, dir)
	if err != nil {
		t.Fatalf("helmtest: package %s: %v", c.Name, err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("helmtest: %v", err)
	}
	return raw
}

// gate makes a server demand basic auth and answer late, as set.
type gate struct {
	mu                 sync.Mutex
	username, password string
	delay              time.Duration
	unauthorized       string // the 401 body
}

// RequireBasicAuth makes the server demand these credentials.
func (g *gate) RequireBasicAuth(username, password string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.username, g.password = username, password
}

// Delay makes every answer wait (for timeouts).
func (g *gate) Delay(d time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.delay = d
}

// pass waits the delay and checks the credentials; false means it answered.
func (g *gate) pass(w http.ResponseWriter, req *http.Request) bool {
	g.mu.Lock()
	user, pass, delay := g.username, g.password, g.delay
	g.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-req.Context().Done():
			return false
		}
	}
	if user != "" {
		if u, p, ok := req.BasicAuth(); !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, g.unauthorized, http.StatusUnauthorized)
			return false
		}
	}
	return true
}

// serveLoopback serves h on 127.0.0.1 until the test ends; it returns the URL.
func serveLoopback(t testing.TB, h http.HandlerFunc) string {
	srv := httptest.NewUnstartedServer(h)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("helmtest: %v", err)
	}
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL
}

// Repo is a Helm HTTP repository.
type Repo struct {
	gate
	URL string

	mu       sync.Mutex
	index    *repo.IndexFile
	archives map[string][]byte
	requests []string
}

// NewRepo serves an empty repository until the test ends.
func NewRepo(t testing.TB) *Repo {
	r := &Repo{index: repo.NewIndexFile(), archives: map[string][]byte{}, gate: gate{unauthorized: "authentication required"}}
	r.URL = serveLoopback(t, r.serve)
	return r
}

// Add publishes a packaged chart.
func (r *Repo) Add(t testing.TB, c Chart, archive []byte) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	file := fmt.Sprintf("%s-%s.tgz", c.Name, c.Version)
	sum := sha256.Sum256(archive)
	md := &chart.Metadata{APIVersion: chart.APIVersionV2, Name: c.Name, Version: c.Version, Type: "application"}
	if err := r.index.MustAdd(md, file, "", hex.EncodeToString(sum[:])); err != nil {
		t.Fatalf("helmtest: index %s: %v", file, err)
	}
	r.index.SortEntries()
	r.archives["/"+file] = archive
}

// Requests are the paths asked for so far.
func (r *Repo) Requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.requests...)
}

func (r *Repo) serve(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.requests = append(r.requests, req.URL.Path)
	r.mu.Unlock()
	if !r.pass(w, req) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if req.URL.Path == "/index.yaml" {
		raw, err := yaml.Marshal(r.index)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_, _ = w.Write(raw)
		return
	}
	if a, ok := r.archives[req.URL.Path]; ok {
		_, _ = w.Write(a)
		return
	}
	http.NotFound(w, req)
}

// Registry is an OCI registry.
type Registry struct {
	gate
	// Host is host:port; URL is oci://Host.
	Host, URL string
}

// NewRegistry serves an empty registry until the test ends; with a
// username it demands basic auth for everything.
func NewRegistry(t testing.TB, username, password string) *Registry {
	reg := &Registry{gate: gate{username: username, password: password, unauthorized: `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`}}
	inner := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	url := serveLoopback(t, func(w http.ResponseWriter, req *http.Request) {
		if reg.pass(w, req) {
			inner.ServeHTTP(w, req)
		}
	})
	reg.Host = strings.TrimPrefix(url, "http://")
	reg.URL = "oci://" + reg.Host
	return reg
}

// Push pushes a packaged chart to Host/path/name:version with Helm's registry client.
func (reg *Registry) Push(t testing.TB, path string, c Chart, archive []byte) {
	t.Helper()
	opts := []registry.ClientOption{registry.ClientOptPlainHTTP(), registry.ClientOptCredentialsFile(filepath.Join(t.TempDir(), "none.json"))}
	if reg.username != "" {
		opts = append(opts, registry.ClientOptBasicAuth(reg.username, reg.password))
	}
	rc, err := registry.NewClient(opts...)
	if err != nil {
		t.Fatalf("helmtest: registry client: %v", err)
	}
	ref := fmt.Sprintf("%s/%s/%s:%s", reg.Host, strings.Trim(path, "/"), c.Name, c.Version)
	if _, err := rc.Push(archive, ref); err != nil {
		t.Fatalf("helmtest: push %s: %v", ref, err)
	}
}
