package helmchart_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flotilla-dev/flotilla/internal/git"
	"github.com/flotilla-dev/flotilla/internal/helmchart"
	"github.com/flotilla-dev/flotilla/internal/helmtest"
)

func chartAt(version string) helmtest.Chart {
	return helmtest.Chart{Name: "hello", Version: version, Templates: map[string]string{"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: hello}\n"}}
}

const secret = "repo-pass-9f8e"

// TestHelmRepository: versions and ranges resolve against index.yaml,
// basic auth is sent only to the repository, and every failure says what
// to fix without the password.
func TestHelmRepository(t *testing.T) {
	repo := helmtest.NewRepo(t)
	for _, v := range []string{"1.0.0", "1.2.0", "1.10.1", "2.0.0"} {
		repo.Add(t, chartAt(v), helmtest.Package(t, chartAt(v)))
	}
	repo.RequireBasicAuth("reader", secret)
	good := git.StaticCredentials{{URLPrefix: repo.URL, Username: "reader", Password: secret}}
	f := helmchart.New(helmchart.Options{Credentials: good, AllowLoopback: true, Timeout: 5 * time.Second})
	for version, want := range map[string]string{"1.2.0": "1.2.0", "~1.2": "1.2.0", "^1.0": "1.10.1", "": "2.0.0", ">=1.0 <2": "1.10.1"} {
		c, err := f.Fetch(t.Context(), repo.URL, "hello", version)
		require.NoError(t, err, version)
		assert.Equal(t, want, c.Version, version)
		assert.NotEmpty(t, c.Archive)
	}
	for range 20 { // a hundred Applications' checks: the index and the archives are downloaded once
		_, err := f.Fetch(t.Context(), repo.URL, "hello", "^1.0")
		require.NoError(t, err)
	}
	downloads := map[string]int{}
	for _, p := range repo.Requests() {
		downloads[p]++
	}
	assert.Equal(t, 1, downloads["/index.yaml"], "index.yaml downloaded once within helmchart.IndexTTL")
	assert.Equal(t, 1, downloads["/hello-1.10.1.tgz"], "an archive downloaded once")

	cases := []struct {
		name, chart, version string
		opts                 helmchart.Options
		says                 string
	}{
		{"no such version", "hello", "3.x", helmchart.Options{Credentials: good}, "has no chart hello matching version \"3.x\""},
		{"no such chart", "nope", "", helmchart.Options{Credentials: good}, "has no chart nope"},
		{"wrong password", "hello", "", helmchart.Options{Credentials: git.StaticCredentials{{URLPrefix: repo.URL, Username: "reader", Password: "wrong-pass"}}}, "refused the credentials (401 Unauthorized)"},
		{"no credentials", "hello", "", helmchart.Options{}, "no credentials are stored for this URL"},
		{"archive over the limit", "hello", "1.0.0", helmchart.Options{Credentials: good, MaxArchiveBytes: 600}, "over the size limit"},
		{"not a chart name", "../etc", "", helmchart.Options{Credentials: good}, "name one chart"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.AllowLoopback, tc.opts.Timeout = true, 5*time.Second
			_, err := helmchart.New(tc.opts).Fetch(t.Context(), repo.URL, tc.chart, tc.version)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.says)
			assert.NotContains(t, err.Error(), secret)
			assert.NotContains(t, err.Error(), "wrong-pass")
		})
	}

	t.Run("timeout", func(t *testing.T) {
		repo.Delay(2 * time.Second)
		defer repo.Delay(0)
		_, err := helmchart.New(helmchart.Options{Credentials: good, AllowLoopback: true, Timeout: 300 * time.Millisecond}).Fetch(t.Context(), repo.URL, "hello", "")
		require.ErrorContains(t, err, "timed out after 300ms")
	})
	t.Run("loopback refused unless allowed", func(t *testing.T) {
		_, err := helmchart.New(helmchart.Options{Credentials: good}).Fetch(t.Context(), repo.URL, "hello", "")
		require.ErrorContains(t, err, "loopback repositories are refused")
	})
}

// TestOCIRegistry: charts pushed with Helm's registry client are pulled by
// exact version and by range, with and without registry auth.
func TestOCIRegistry(t *testing.T) {
	open := helmtest.NewRegistry(t, "", "")
	for _, v := range []string{"0.1.0", "0.2.0"} {
		open.Push(t, "charts", chartAt(v), helmtest.Package(t, chartAt(v)))
	}
	f := helmchart.New(helmchart.Options{AllowLoopback: true, Timeout: 10 * time.Second})
	c, err := f.Fetch(t.Context(), open.URL+"/charts", "hello", "0.1.0")
	require.NoError(t, err)
	assert.Equal(t, "0.1.0", c.Version)
	c, err = f.Fetch(t.Context(), open.URL+"/charts", "hello", "~0.x")
	require.NoError(t, err)
	assert.Equal(t, "0.2.0", c.Version)
	_, err = f.Fetch(t.Context(), open.URL+"/charts", "hello", "9.9.9")
	require.ErrorContains(t, err, "no chart hello at version 9.9.9")

	private := helmtest.NewRegistry(t, "puller", secret)
	private.Push(t, "charts", chartAt("1.0.0"), helmtest.Package(t, chartAt("1.0.0")))
	good := git.StaticCredentials{{URLPrefix: "oci://" + private.Host, Username: "puller", Password: secret}}
	c, err = helmchart.New(helmchart.Options{Credentials: good, AllowLoopback: true, Timeout: 10 * time.Second}).Fetch(t.Context(), private.URL+"/charts", "hello", "1.0.0")
	require.NoError(t, err)
	assert.Equal(t, "1.0.0", c.Version)

	for name, creds := range map[string]git.CredentialSource{
		"wrong password": git.StaticCredentials{{URLPrefix: "oci://" + private.Host, Username: "puller", Password: "wrong-pass"}},
		"none":           nil,
	} {
		_, err := helmchart.New(helmchart.Options{Credentials: creds, AllowLoopback: true, Timeout: 10 * time.Second}).Fetch(t.Context(), private.URL+"/charts", "hello", "1.0.0")
		require.Error(t, err, name)
		assert.Contains(t, err.Error(), "refused the credentials", name)
		assert.False(t, strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "wrong-pass"), name)
	}

	private.Delay(2 * time.Second)
	_, err = helmchart.New(helmchart.Options{Credentials: good, AllowLoopback: true, Timeout: 300 * time.Millisecond}).Fetch(t.Context(), private.URL+"/charts", "hello", "1.0.0")
	require.ErrorContains(t, err, "timed out after 300ms")
}
