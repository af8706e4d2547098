// Package gitserver serves real Git repositories over smart HTTP on
// 127.0.0.1 (`git http-backend` behind net/http/cgi) for the local fleet
// (`flotilla sandbox`, the e2e tests) and, through internal/gittest, for
// unit tests. It does not import testing.
package gitserver

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/flotilla-dev/flotilla/internal/testca"
)

// Server is a Git smart-HTTP server bound to 127.0.0.1.
type Server struct {
	// Root holds the bare repositories served.
	Root string
	// URL is the base address, e.g. http://127.0.0.1:34567.
	URL string
	// CAPEM is the certificate authority an HTTPS server's certificate
	// chains to (StartTLSAt); nil for plain HTTP.
	CAPEM []byte

	work     string
	srv      *http.Server
	ln       net.Listener
	mu       sync.Mutex
	username string
	password string
	requests int
}

// Start serves bare repositories under root (created if missing); work is a
// scratch folder for working trees. Call Close when done.
func Start(root, work string) (*Server, error) { return StartAt(root, work, "") }

// StartAt is Start on a given 127.0.0.1 address ("" picks a free port), so
// a stopped server can come back where its clients expect it.
func StartAt(root, work, addr string) (*Server, error) { return start(root, work, addr, false) }

// StartTLSAt is StartAt over HTTPS, with a certificate from a fresh test
// CA (Server.CAPEM).
func StartTLSAt(root, work, addr string) (*Server, error) { return start(root, work, addr, true) }

func start(root, work, addr string, useTLS bool) (*Server, error) {
	gitPath, err := exec.LookPath("git")
	if err != nil {
		return nil, fmt.Errorf("git is needed to serve repositories: %w", err)
	}
	for _, d := range []string{root, work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on 127.0.0.1: %w", err)
	}
	s := &Server{Root: root, work: work, ln: ln, URL: "http://" + ln.Addr().String()}
	if useTLS {
		ca, err := testca.New()
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("make a test CA: %w", err)
		}
		s.ln, s.URL, s.CAPEM = tls.NewListener(ln, ca.ServerConfig()), "https://"+ln.Addr().String(), ca.PEM
	}
	backend := &cgi.Handler{
		Path: gitPath,
		Args: []string{"http-backend"},
		Env: []string{
			"GIT_PROJECT_ROOT=" + root,
			"GIT_HTTP_EXPORT_ALL=1",
			"GIT_CONFIG_NOSYSTEM=1",
			"HOME=" + work,
		},
	}
	s.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		user, pass := s.username, s.password
		s.requests++
		s.mu.Unlock()
		if user != "" {
			u, p, ok := r.BasicAuth()
			if !ok || u != user || p != pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				http.Error(w, "authentication required", http.StatusUnauthorized)
				return
			}
		}
		backend.ServeHTTP(w, r)
	}), ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)} // a refused TLS handshake is the client's news
	go func() { _ = s.srv.Serve(s.ln) }()
	return s, nil
}

// Close stops serving.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}

// RequireBasicAuth makes the server demand these credentials.
func (s *Server) RequireBasicAuth(username, password string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.username, s.password = username, password
}

// Requests counts the HTTP requests served so far.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// Repo is one served repository with a working tree to commit from.
type Repo struct {
	Name string
	// URL to clone, e.g. http://127.0.0.1:34567/deploy.git
	URL string

	server *Server
	dir    string
	mu     sync.Mutex
}

// CreateRepo creates an empty repository "<name>.git" with branch main.
func (s *Server) CreateRepo(name string) (*Repo, error) {
	bare := filepath.Join(s.Root, name+".git")
	dir := filepath.Join(s.work, name)
	if err := run("", "git", "init", "-q", "--bare", "-b", "main", bare); err != nil {
		return nil, err
	}
	if err := run("", "git", "init", "-q", "-b", "main", dir); err != nil {
		return nil, err
	}
	if err := run(dir, "git", "remote", "add", "origin", bare); err != nil {
		return nil, err
	}
	// A person committing in the working tree (the sandbox) needs an identity.
	if err := run(dir, "git", "config", "user.name", "Flotilla sandbox"); err != nil {
		return nil, err
	}
	if err := run(dir, "git", "config", "user.email", "sandbox@flotilla.local"); err != nil {
		return nil, err
	}
	return &Repo{Name: name, URL: s.URL + "/" + name + ".git", server: s, dir: dir}, nil
}

// Dir is the repository's working tree.
func (r *Repo) Dir() string { return r.dir }

// Commit writes files (path → content; an empty content with a trailing
// "@delete" removes the file), commits them on the current branch, pushes,
// and returns the commit SHA.
func (r *Repo) Commit(files map[string]string, message string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for p, content := range files {
		full := filepath.Join(r.dir, filepath.FromSlash(p))
		if content == Delete {
			if err := os.RemoveAll(full); err != nil {
				return "", err
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			return "", err
		}
	}
	return r.commitAll(message)
}

// Delete as a file's content in Commit removes the file.
const Delete = "\x00delete"

// Symlink creates a symbolic link at path pointing at target, and commits it.
func (r *Repo) Symlink(path, target, message string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	full := filepath.Join(r.dir, filepath.FromSlash(path))
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return "", err
	}
	if err := os.Symlink(target, full); err != nil {
		return "", err
	}
	return r.commitAll(message)
}

// Tag creates a lightweight (annotated when message is set) tag at HEAD and pushes it.
func (r *Repo) Tag(name, message string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	args := []string{"tag", name}
	if message != "" {
		args = []string{"tag", "-a", name, "-m", message}
	}
	if err := run(r.dir, "git", args...); err != nil {
		return err
	}
	return run(r.dir, "git", "push", "-q", "origin", "refs/tags/"+name)
}

// Branch creates (or switches to) a branch in the working tree.
func (r *Repo) Branch(name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return run(r.dir, "git", "checkout", "-q", "-B", name)
}

func (r *Repo) commitAll(message string) (string, error) {
	if err := run(r.dir, "git", "add", "-A"); err != nil {
		return "", err
	}
	if err := run(r.dir, "git", "-c", "user.name=gittest", "-c", "user.email=gittest@127.0.0.1",
		"commit", "-q", "--allow-empty", "-m", message); err != nil {
		return "", err
	}
	branch, err := output(r.dir, "git", "rev-parse", "--abbrev-ref", "HEAD")
	if err != nil {
		return "", err
	}
	if err := run(r.dir, "git", "push", "-q", "-f", "origin", "HEAD:refs/heads/"+branch); err != nil {
		return "", err
	}
	return output(r.dir, "git", "rev-parse", "HEAD")
}

func run(dir, name string, args ...string) error {
	_, err := output(dir, name, args...)
	return err
}

func output(dir, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", errors.New(strings.TrimSpace(fmt.Sprintf("%s %s: %v: %s", name, strings.Join(args, " "), err, stderr.String())))
	}
	return strings.TrimSpace(stdout.String()), nil
}
