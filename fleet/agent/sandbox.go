package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/flotilla-dev/flotilla/internal/git"
	"github.com/flotilla-dev/flotilla/internal/procstat"
)

// Renderer turns an Application's source at a fetched commit into objects.
// The tree of a Git source must be a *git.Snapshot of the agent's cache.
type Renderer interface {
	Render(ctx context.Context, in RenderInput) ([]*unstructured.Unstructured, error)
}

// InProcess renders in the agent's own process: for tests, and for agents
// started with --render-in-process. It has no memory or time budget.
type InProcess struct{ Options RenderOptions }

// Render implements Renderer.
func (p InProcess) Render(_ context.Context, in RenderInput) ([]*unstructured.Unstructured, error) {
	return RenderSource(in, p.Options)
}

// Sandbox renders each Application in a child process (the agent binary's
// `render` command) under a memory and a time budget, with no network
// unless remote bases are allowed. A render over budget is killed and fails
// that Application alone; the agent carries on.
type Sandbox struct {
	// Command starts the worker, e.g. {os.Executable(), "render"}; Env is
	// added to its (otherwise empty) environment.
	Command []string
	Env     []string
	// GitDir is the agent's Git cache, which the worker reads (no network).
	GitDir        string
	MaxFileSize   int64
	AllowLoopback bool
	Options       RenderOptions
	// Timeout (default 30s) and MemoryBytes (resident, default 160 MiB)
	// bound one render; Concurrency (default 2) bounds renders at once, so
	// that Concurrency × MemoryBytes plus the agent fit its memory limit.
	Timeout     time.Duration
	MemoryBytes int64
	Concurrency int

	once sync.Once // defaults and the semaphore, set up by the first Render
	sem  chan struct{}
}

// Sandbox defaults.
const (
	DefaultRenderTimeout     = 30 * time.Second
	DefaultRenderMemory      = 160 << 20
	DefaultRenderConcurrency = 2
)

// renderRequest is what the parent sends the worker on stdin.
type renderRequest struct {
	GitDir        string        `json:"gitDir"`
	RepoURL       string        `json:"repoURL,omitempty"`
	Revision      string        `json:"revision,omitempty"`
	MaxFileSize   int64         `json:"maxFileSize"`
	AllowLoopback bool          `json:"allowLoopback,omitempty"`
	MemoryBytes   int64         `json:"memoryBytes"`
	Input         RenderInput   `json:"input"`
	Options       RenderOptions `json:"options"`
}

// renderResponse is what the worker writes on stdout.
type renderResponse struct {
	Objects     []json.RawMessage `json:"objects,omitempty"`
	Error       string            `json:"error,omitempty"`
	RenderError bool              `json:"renderError,omitempty"` // the user's repository or Application is at fault
}

// init sets the defaults once: the agent renders from several workers.
func (s *Sandbox) init() { s.once.Do(s.setDefaults) }

func (s *Sandbox) setDefaults() {
	if s.Timeout <= 0 {
		s.Timeout = DefaultRenderTimeout
	}
	if s.MemoryBytes <= 0 {
		s.MemoryBytes = DefaultRenderMemory
	}
	if s.Concurrency <= 0 {
		s.Concurrency = DefaultRenderConcurrency
	}
	s.sem = make(chan struct{}, s.Concurrency)
}

// Render implements Renderer.
func (s *Sandbox) Render(ctx context.Context, in RenderInput) ([]*unstructured.Unstructured, error) {
	s.init()
	select {
	case s.sem <- struct{}{}:
		defer func() { <-s.sem }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	r := renderRequest{GitDir: s.GitDir, MaxFileSize: s.MaxFileSize, AllowLoopback: s.AllowLoopback, MemoryBytes: s.MemoryBytes, Input: in, Options: s.Options}
	if in.Chart == nil {
		snap, ok := in.Tree.(*git.Snapshot)
		if !ok {
			return nil, errors.New("the render sandbox reads Git sources from the agent's cache only")
		}
		r.RepoURL, r.Revision = snap.URL, snap.Revision
	}
	req, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	out, err := s.run(ctx, req)
	if err != nil {
		return nil, err
	}
	var resp renderResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		return nil, fmt.Errorf("read the render worker's answer: %w", err)
	}
	if resp.Error != "" {
		if resp.RenderError {
			return nil, fmt.Errorf("%w: %s", ErrRender, strings.TrimPrefix(resp.Error, ErrRender.Error()+": "))
		}
		return nil, errors.New(resp.Error)
	}
	objs := make([]*unstructured.Unstructured, 0, len(resp.Objects))
	for _, raw := range resp.Objects {
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(raw); err != nil {
			return nil, fmt.Errorf("read the render worker's objects: %w", err)
		}
		objs = append(objs, u)
	}
	return objs, nil
}

// run starts the worker, watches its memory, and returns its stdout.
func (s *Sandbox) run(ctx context.Context, req []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	// A scratch directory of its own (kustomize clones remote bases there),
	// removed with everything in it when the render ends.
	scratch, err := os.MkdirTemp("", "flotilla-render-")
	if err != nil {
		return nil, fmt.Errorf("create the render's scratch directory: %w", err)
	}
	defer os.RemoveAll(scratch)
	cmd := exec.CommandContext(ctx, s.Command[0], s.Command[1:]...)
	cmd.Dir = scratch
	cmd.Env = append([]string{"HOME=" + scratch, "TMPDIR=" + scratch}, s.Env...)
	if s.Options.AllowRemoteBases {
		cmd.Env = append(cmd.Env, "PATH="+os.Getenv("PATH")) // kustomize runs git for remote bases
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(req), &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// Past its deadline the whole process group goes, the worker and what
	// it started (git cloning a remote base): killing the worker alone
	// would leave git running, and Wait waiting on its output.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the render worker: %w", err)
	}
	overMemory := make(chan int64, 1)
	done := make(chan struct{})
	go watchMemory(cmd.Process, s.MemoryBytes, overMemory, done)
	err = cmd.Wait()
	close(done)
	select {
	case rss := <-overMemory:
		return nil, fmt.Errorf("%w: the render used more than its memory budget (%d MiB resident, budget %d MiB) and was stopped: look for huge or deeply repeated YAML, or raise --render-memory",
			ErrRender, rss>>20, s.MemoryBytes>>20)
	default:
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return nil, fmt.Errorf("%w: the render took longer than its time budget (%s) and was stopped: look for very many objects, or raise --render-timeout", ErrRender, s.Timeout)
	}
	if err != nil && stdout.Len() == 0 {
		return nil, fmt.Errorf("the render worker failed (%w): %s", err, lastLine(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// watchMemory kills p when its resident memory passes budget.
func watchMemory(p *os.Process, budget int64, over chan<- int64, done <-chan struct{}) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		st, err := procstat.Read(p.Pid)
		if rss := int64(st.RSSMiB * (1 << 20)); err == nil && rss > budget {
			over <- rss
			_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
			return
		}
	}
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}

// errNetworkDisabled is what any dial in a render without remote bases gets.
var errNetworkDisabled = errors.New("network access is disabled while rendering (remote bases are off)")

// BlockNetwork makes every HTTP request of this process fail without a
// dial (kustomize fetches URLs with http.DefaultTransport) and git
// unrunnable (kustomize clones with the git binary). It returns a function
// that undoes it (for tests).
func BlockNetwork() (restore func()) {
	transport, path := http.DefaultTransport, os.Getenv("PATH")
	refuse := func(context.Context, string, string) (net.Conn, error) { return nil, errNetworkDisabled }
	http.DefaultTransport = &http.Transport{DialContext: refuse}
	_ = os.Setenv("PATH", "")
	return func() {
		http.DefaultTransport = transport
		_ = os.Setenv("PATH", path)
	}
}

// RenderWorker is the render sandbox's child: it reads a request from in,
// renders from the Git cache without network, and writes the answer to
// out. Without remote bases every HTTP request fails and git cannot run.
func RenderWorker(in io.Reader, out io.Writer) error {
	var req renderRequest
	if err := json.NewDecoder(in).Decode(&req); err != nil {
		return fmt.Errorf("read the render request: %w", err)
	}
	if !req.Options.AllowRemoteBases {
		BlockNetwork()
	}
	if req.MemoryBytes > 0 {
		debug.SetMemoryLimit(req.MemoryBytes * 3 / 4) // collect hard before the parent's budget kills us
	}
	resp := renderResponse{}
	objs, err := renderFromCache(req)
	if err != nil {
		resp.Error, resp.RenderError = err.Error(), errors.Is(err, ErrRender)
	}
	for _, o := range objs {
		raw, err := o.MarshalJSON()
		if err != nil {
			return err
		}
		resp.Objects = append(resp.Objects, raw)
	}
	return json.NewEncoder(out).Encode(resp)
}

func renderFromCache(req renderRequest) ([]*unstructured.Unstructured, error) {
	if req.Input.Chart == nil {
		cache, err := git.New(git.Options{Dir: req.GitDir, MaxFileSize: req.MaxFileSize, AllowLoopback: req.AllowLoopback})
		if err != nil {
			return nil, err
		}
		snap, err := cache.LocalSnapshot(req.RepoURL, req.Revision)
		if err != nil {
			return nil, err
		}
		req.Input.Tree = snap
	}
	return RenderSource(req.Input, req.Options)
}
