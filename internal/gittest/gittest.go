// Package gittest is internal/gitserver for tests: servers and
// repositories that fail the test on error and stop when it ends.
package gittest

import (
	"path/filepath"
	"testing"

	"github.com/flotilla-dev/flotilla/internal/gitserver"
)

// Server is a Git server started for one test.
type Server struct{ *gitserver.Server }

// Repo is a repository of a test's Server.
type Repo struct{ *gitserver.Repo }

// New starts a server for the duration of a test.
func New(t testing.TB) *Server {
	t.Helper()
	dir := t.TempDir()
	s, err := gitserver.Start(filepath.Join(dir, "repos"), filepath.Join(dir, "work"))
	if err != nil {
		t.Fatalf("gittest: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return &Server{s}
}

// NewTLS is New over HTTPS with a test CA (Server.CAPEM).
func NewTLS(t testing.TB) *Server {
	t.Helper()
	dir := t.TempDir()
	s, err := gitserver.StartTLSAt(filepath.Join(dir, "repos"), filepath.Join(dir, "work"), "")
	if err != nil {
		t.Fatalf("gittest: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return &Server{s}
}

// Repo creates a repository for a test, failing it on error.
func (s *Server) Repo(t testing.TB, name string) *Repo {
	t.Helper()
	r, err := s.CreateRepo(name)
	if err != nil {
		t.Fatalf("gittest: create repo %s: %v", name, err)
	}
	return &Repo{r}
}

// MustCommit commits for a test, failing it on error.
func (r *Repo) MustCommit(t testing.TB, files map[string]string, message string) string {
	t.Helper()
	sha, err := r.Commit(files, message)
	if err != nil {
		t.Fatalf("gittest: commit to %s: %v", r.Name, err)
	}
	return sha
}

// Delete as a file's content in Commit removes the file.
const Delete = gitserver.Delete
