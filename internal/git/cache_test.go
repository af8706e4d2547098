package git_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"github.com/flotilla-dev/flotilla/internal/git"
	"github.com/flotilla-dev/flotilla/internal/gittest"
	"github.com/flotilla-dev/flotilla/internal/testenv"
)

func newCache(t *testing.T, opts git.Options) *git.Cache {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = filepath.Join(t.TempDir(), "cache")
	}
	opts.AllowLoopback = true // the test servers listen on 127.0.0.1
	c, err := git.New(opts)
	require.NoError(t, err)
	return c
}

func TestResolve(t *testing.T) {
	srv := gittest.New(t)
	repo := srv.Repo(t, "deploy")
	first := repo.MustCommit(t, map[string]string{"apps/a/kustomization.yaml": "resources: []\n"}, "first")
	require.NoError(t, repo.Tag("v1", ""))
	require.NoError(t, repo.Tag("v1-annotated", "release v1"))
	second := repo.MustCommit(t, map[string]string{"apps/b/kustomization.yaml": "resources: []\n"}, "second")
	require.NoError(t, repo.Branch("feature"))
	feature := repo.MustCommit(t, map[string]string{"feature.txt": "x"}, "feature")

	c := newCache(t, git.Options{Timeout: 20 * time.Second})
	cases := []struct {
		name, revision, want string
	}{
		{name: "default branch", revision: "", want: second},
		{name: "HEAD", revision: "HEAD", want: second},
		{name: "branch", revision: "main", want: second},
		{name: "other branch", revision: "feature", want: feature},
		{name: "full ref", revision: "refs/heads/feature", want: feature},
		{name: "lightweight tag", revision: "v1", want: first},
		{name: "annotated tag peeled to its commit", revision: "v1-annotated", want: first},
		{name: "commit SHA not at any tip", revision: first, want: first},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := c.Resolve(t.Context(), repo.URL, tc.revision)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}

	t.Run("a new commit changes the result", func(t *testing.T) {
		require.NoError(t, repo.Branch("main"))
		third := repo.MustCommit(t, map[string]string{"apps/c/kustomization.yaml": "resources: []\n"}, "third")
		got, err := c.Resolve(t.Context(), repo.URL, "main")
		require.NoError(t, err)
		assert.Equal(t, third, got)
		snap, err := c.Snapshot(t.Context(), repo.URL, "main")
		require.NoError(t, err)
		assert.Equal(t, []string{"apps", "apps/a", "apps/b", "apps/c"}, snap.Dirs())
	})
}

func TestResolveErrors(t *testing.T) {
	srv := gittest.New(t)
	repo := srv.Repo(t, "deploy")
	repo.MustCommit(t, map[string]string{"a.txt": "a"}, "first")

	t.Run("unknown revision", func(t *testing.T) {
		c := newCache(t, git.Options{})
		_, err := c.Resolve(t.Context(), repo.URL, "no-such-branch")
		require.ErrorIs(t, err, git.ErrUnknownRevision)
		assert.Contains(t, err.Error(), `"no-such-branch"`)
	})
	t.Run("unknown commit", func(t *testing.T) {
		c := newCache(t, git.Options{})
		_, err := c.Resolve(t.Context(), repo.URL, strings.Repeat("ab", 20))
		require.ErrorIs(t, err, git.ErrUnknownRevision)
	})
	t.Run("missing repository", func(t *testing.T) {
		c := newCache(t, git.Options{})
		_, err := c.Resolve(t.Context(), srv.URL+"/nope.git", "main")
		require.Error(t, err)
		assert.Contains(t, err.Error(), "nope.git")
	})
	t.Run("unreachable repository times out", func(t *testing.T) {
		// A server that accepts connections and never answers.
		addr := testenv.Blackhole(t)
		c := newCache(t, git.Options{Timeout: 500 * time.Millisecond})
		start := time.Now()
		_, err := c.Resolve(t.Context(), "http://"+addr+"/hang.git", "main")
		require.Error(t, err)
		assert.Contains(t, err.Error(), "timed out after 500ms")
		assert.Less(t, time.Since(start), 10*time.Second)
	})
	t.Run("local paths are refused", func(t *testing.T) {
		c := newCache(t, git.Options{})
		for _, u := range []string{"/etc", "file:///etc", "../repo"} {
			_, err := c.Resolve(t.Context(), u, "main")
			require.Error(t, err, u)
			assert.Contains(t, err.Error(), "not supported")
		}
	})
}

func TestCredentials(t *testing.T) {
	srv := gittest.New(t)
	repo := srv.Repo(t, "private")
	sha := repo.MustCommit(t, map[string]string{"a.txt": "a"}, "first")
	srv.RequireBasicAuth("robot", "s3cret-token")

	t.Run("anonymous is refused with a hint", func(t *testing.T) {
		c := newCache(t, git.Options{})
		_, err := c.Resolve(t.Context(), repo.URL, "main")
		require.Error(t, err)
		// The agent and the CLI cannot take credentials: the hint must not
		// ask for them.
		assert.Contains(t, err.Error(), "reads repositories without credentials: make the repository readable without them")
		assert.NotContains(t, err.Error(), "add or fix")
	})
	t.Run("token from a Secret matched by longest prefix", func(t *testing.T) {
		creds := git.CredentialsFromSecrets([]corev1.Secret{
			{Data: map[string][]byte{"url": []byte(srv.URL), "username": []byte("robot"), "password": []byte("wrong")}},
			{Data: map[string][]byte{"url": []byte(repo.URL), "username": []byte("robot"), "token": []byte("s3cret-token")}},
			{Data: map[string][]byte{"username": []byte("no-url-is-ignored")}},
		})
		require.Len(t, creds, 2)
		c := newCache(t, git.Options{Credentials: creds})
		got, err := c.Resolve(t.Context(), repo.URL, "main")
		require.NoError(t, err)
		assert.Equal(t, sha, got)
	})
	t.Run("wrong password", func(t *testing.T) {
		c := newCache(t, git.Options{Credentials: git.StaticCredentials{{URLPrefix: srv.URL, Username: "robot", Password: "nope"}}})
		_, err := c.Resolve(t.Context(), repo.URL, "main")
		require.Error(t, err)
		assert.NotContains(t, err.Error(), "nope", "errors must not leak secrets")
		assert.Contains(t, err.Error(), "add or fix the hub's repository credentials for this URL")
	})
	t.Run("a credential never prints its secret", func(t *testing.T) {
		cred := git.Credential{URLPrefix: "https://x", Password: "s3cret-token", SSHPrivateKey: "-----BEGIN KEY-----"}
		assert.NotContains(t, fmt.Sprintf("%v %+v %s", cred, cred, cred), "s3cret")
	})
}

func TestSnapshotFiles(t *testing.T) {
	srv := gittest.New(t)
	repo := srv.Repo(t, "files")
	repo.MustCommit(t, map[string]string{
		"clusters/a/config.json": `{"name":"a"}`,
		"big.yaml":               strings.Repeat("x", 2048),
		"dir/inner/file.txt":     "inner",
	}, "files")
	_, err := repo.Symlink("clusters/b/config.json", "../a/config.json", "inside link")
	require.NoError(t, err)
	_, err = repo.Symlink("clusters/evil/config.json", "../../../../etc/passwd", "escaping link")
	require.NoError(t, err)
	_, err = repo.Symlink("clusters/abs/config.json", "/etc/passwd", "absolute link")
	require.NoError(t, err)
	_, err = repo.Symlink("linkdir", "..", "dir link to parent")
	require.NoError(t, err)
	_, err = repo.Symlink("inlinkdir", "dir/inner", "dir link inside")
	require.NoError(t, err)

	c := newCache(t, git.Options{MaxFileSize: 1024})
	snap, err := c.Snapshot(t.Context(), repo.URL, "main")
	require.NoError(t, err)

	cases := []struct {
		name, path, want string
		wantErr          error
		errText          string
	}{
		{name: "regular file", path: "clusters/a/config.json", want: `{"name":"a"}`},
		{name: "symlink inside the repo", path: "clusters/b/config.json", want: `{"name":"a"}`},
		{name: "through a directory symlink", path: "inlinkdir/file.txt", want: "inner"},
		{name: "symlink escaping with ..", path: "clusters/evil/config.json", wantErr: git.ErrEscapesRepo},
		{name: "absolute symlink", path: "clusters/abs/config.json", wantErr: git.ErrEscapesRepo},
		{name: "directory symlink to the parent", path: "linkdir/etc/passwd", wantErr: git.ErrEscapesRepo},
		{name: "dot-dot path", path: "clusters/../../etc/passwd", wantErr: git.ErrEscapesRepo},
		{name: "absolute path", path: "/etc/passwd", wantErr: git.ErrEscapesRepo},
		{name: "oversized file", path: "big.yaml", wantErr: git.ErrTooLarge, errText: "2048 bytes, the limit is 1024"},
		{name: "missing file", path: "nope.json", errText: "no such file"},
		{name: "a directory", path: "clusters", errText: "is a directory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := snap.ReadFile(tc.path)
			if tc.wantErr == nil && tc.errText == "" {
				require.NoError(t, err)
				assert.Equal(t, tc.want, string(got))
				return
			}
			require.Error(t, err)
			if tc.wantErr != nil {
				assert.ErrorIs(t, err, tc.wantErr)
			}
			assert.Contains(t, err.Error(), tc.errText)
		})
	}
}

// TestConcurrentUseStaysInCache hammers one cache from many goroutines and
// checks that nothing was written outside its directory.
func TestConcurrentUseStaysInCache(t *testing.T) {
	srv := gittest.New(t)
	repo := srv.Repo(t, "busy")
	sha := repo.MustCommit(t, map[string]string{"apps/a/x.yaml": "a: 1\n"}, "first")

	parent := t.TempDir()
	home := filepath.Join(parent, "home")
	require.NoError(t, os.Mkdir(home, 0o700))
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	c := newCache(t, git.Options{Dir: filepath.Join(parent, "cache")})

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			snap, err := c.Snapshot(ctx, repo.URL, "main")
			if err != nil {
				errs <- err
				return
			}
			if snap.Revision != sha {
				errs <- errors.New("wrong revision " + snap.Revision)
				return
			}
			if _, err := snap.ReadFile("apps/a/x.yaml"); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	entries, err := os.ReadDir(parent)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.ElementsMatch(t, []string{"cache", "home"}, names)
	homeEntries, err := os.ReadDir(home)
	require.NoError(t, err)
	assert.Empty(t, homeEntries, "nothing may be written to $HOME")
}

// TestCredentialsNotSentAcrossRedirect: a repository server that redirects
// to another origin never gets the credentials forwarded there.
func TestCredentialsNotSentAcrossRedirect(t *testing.T) {
	var mu sync.Mutex
	var evilAuth []string
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		evilAuth = append(evilAuth, r.Header.Get("Authorization"))
		mu.Unlock()
		http.NotFound(w, r)
	}))
	t.Cleanup(evil.Close)
	var trustedAuth string
	trusted := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		trustedAuth = r.Header.Get("Authorization")
		http.Redirect(w, r, evil.URL+r.URL.RequestURI(), http.StatusFound)
	}))
	t.Cleanup(trusted.Close)

	c := newCache(t, git.Options{Timeout: 10 * time.Second,
		Credentials: git.StaticCredentials{{URLPrefix: trusted.URL, Username: "u", Password: "the-token"}}})
	_, err := c.Resolve(t.Context(), trusted.URL+"/repo.git", "main")
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "the-token")
	assert.NotEmpty(t, trustedAuth, "the trusted origin gets the credentials")
	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, evilAuth, "the redirect was followed (so the test sees what it carried)")
	for _, a := range evilAuth {
		assert.Empty(t, a, "credentials followed the redirect to another origin")
	}
}

// TestOldCommitSHAIsBounded: a commit the server does not hand out by SHA
// is looked for in the recent history of branches and tags only, so an
// unknown or very old SHA fails instead of cloning everything.
func TestOldCommitSHAIsBounded(t *testing.T) {
	repo := gittest.New(t).Repo(t, "history")
	first := repo.MustCommit(t, map[string]string{"f.txt": "0"}, "commit 0")
	for i := 1; i <= git.MaxSHADepth+5; i++ {
		repo.MustCommit(t, map[string]string{"f.txt": fmt.Sprint(i)}, fmt.Sprintf("commit %d", i))
	}
	c := newCache(t, git.Options{Timeout: 20 * time.Second})
	_, err := c.Resolve(t.Context(), repo.URL, first)
	require.ErrorIs(t, err, git.ErrUnknownRevision)
	assert.ErrorContains(t, err, fmt.Sprintf("no such commit among the last %d", git.MaxSHADepth))
	_, err = c.Resolve(t.Context(), repo.URL, "0123456789abcdef0123456789abcdef01234567")
	require.ErrorIs(t, err, git.ErrUnknownRevision, "an unknown SHA fails")
}

// TestFetchRefusesDecompressionBomb: a 48 MiB all-zero blob is ~50 KiB on
// the wire. The fetch fails at its header with a clear message, without
// inflating it in memory (unguarded, go-git allocates its full size), and
// leaves no partial pack behind; once the blob is gone the repository works.
func TestFetchRefusesDecompressionBomb(t *testing.T) {
	srv := gittest.New(t)
	repo := srv.Repo(t, "bomb")
	repo.MustCommit(t, map[string]string{"zero.bin": strings.Repeat("\x00", 48<<20), "app/cm.yaml": "a: 1\n"}, "bomb")
	c := newCache(t, git.Options{})

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := c.Resolve(t.Context(), repo.URL, "main")
	runtime.ReadMemStats(&after)
	require.ErrorIs(t, err, git.ErrRepositoryTooLarge)
	assert.Contains(t, err.Error(), "an object of 50331648 bytes, the limit is 33554432 (--max-git-object-bytes)")
	assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(24<<20), "bytes allocated during the refused fetch")
	leftovers, _ := filepath.Glob(filepath.Join(c.Dir(), "*", "objects", "pack", "tmp_pack_*"))
	assert.Empty(t, leftovers)

	fixed := repo.MustCommit(t, map[string]string{"zero.bin": gittest.Delete}, "remove the blob")
	got, err := c.Resolve(t.Context(), repo.URL, "main")
	require.NoError(t, err)
	assert.Equal(t, fixed, got)
}

// TestOpenRepositoriesAreBounded: the cache keeps at most MaxOpenRepos
// repositories open, however many it has met; an evicted one works again.
func TestOpenRepositoriesAreBounded(t *testing.T) {
	srv := gittest.New(t)
	c := newCache(t, git.Options{MaxOpenRepos: 3})
	want := map[string]string{}
	for i := range 6 {
		repo := srv.Repo(t, fmt.Sprintf("repo-%d", i))
		want[repo.URL] = repo.MustCommit(t, map[string]string{"a.txt": fmt.Sprint(i)}, "first")
		_, err := c.Resolve(t.Context(), repo.URL, "main")
		require.NoError(t, err)
		assert.LessOrEqual(t, c.OpenRepos(), 3)
	}
	for url, sha := range want {
		snap, err := c.Snapshot(t.Context(), url, "main")
		require.NoError(t, err, "an evicted repository opens again")
		assert.Equal(t, sha, snap.Revision)
	}
	assert.LessOrEqual(t, c.OpenRepos(), 3)
}
