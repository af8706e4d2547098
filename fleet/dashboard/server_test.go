package dashboard_test

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/dashboard"
	"github.com/flotilla-dev/flotilla/internal/testenv"
)

func set(ns, name string) *flotillav1.ApplicationSet {
	s := &flotillav1.ApplicationSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := yaml.Unmarshal([]byte(`[{list: {elements: [{cluster: c}]}}]`), &s.Spec.Generators); err != nil {
		panic(err)
	}
	s.Spec.Template.Metadata.Name = "x"
	s.Spec.Template.Spec.Source.RepoURL = "https://git.example/x.git"
	s.Spec.Template.Spec.Destination.Cluster = "c"
	return s
}

// TestHubMode: the hub-served dashboard refuses no token, a garbage token
// (401) and a token without read rights (403); a user allowed one
// namespace sees only its sets; the login form sets an HttpOnly,
// SameSite=Strict cookie and refuses cross-site posts; every answer has
// the security headers.
func TestHubMode(t *testing.T) {
	env := testenv.Start(t)
	ctx := t.Context()
	c := env.Client
	for _, ns := range []string{"team-a", "team-b", "tokens"} {
		require.NoError(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	}
	require.NoError(t, c.Create(ctx, set("team-a", "alpha")))
	require.NoError(t, c.Create(ctx, set("team-b", "bravo")))
	require.NoError(t, c.Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "read"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{flotillav1.GroupVersion.Group}, Resources: []string{"applicationsets", "applications"}, Verbs: []string{"get", "list", "watch"}}}}))
	require.NoError(t, c.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "read"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "read"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "alice", Namespace: "tokens"}}}))
	cs, err := kubernetes.NewForConfig(env.Config)
	require.NoError(t, err)
	token := func(sa string) string {
		_, err := cs.CoreV1().ServiceAccounts("tokens").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{})
		require.NoError(t, err)
		tr, err := cs.CoreV1().ServiceAccounts("tokens").CreateToken(ctx, sa, &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{}}, metav1.CreateOptions{})
		require.NoError(t, err)
		return tr.Status.Token
	}
	alice, nobody := token("alice"), token("nobody")

	srv, err := dashboard.New(dashboard.Options{Hub: env.Config})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.Serve(ctx, ln) }()
	base := "http://" + ln.Addr().String()
	noRedirect := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	type answer struct {
		StatusCode int
		Header     http.Header
	}
	get := func(path, tok string, hdr ...string) (answer, string) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		require.NoError(t, err)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := noRedirect.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return answer{resp.StatusCode, resp.Header}, string(body)
	}

	resp, _ := get("/", "")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "no token")
	resp, _ = get("/", "", "Accept", "text/html")
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode, "a browser without a token goes to the login page")
	assert.Equal(t, "/login", resp.Header.Get("Location"))
	resp, _ = get("/", "garbage-token")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "a garbage token")
	resp, body := get("/", nobody)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "a valid token that may read nothing: %s", body)

	resp, body = get("/", alice)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.Contains(t, body, "team-a/alpha")
	assert.NotContains(t, body, "bravo", "another namespace's set")
	resp, _ = get("/sets/team-b/bravo", alice)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "another namespace's set is not found")
	resp, body = get("/sets/team-a/alpha", alice)
	assert.Equal(t, http.StatusOK, resp.StatusCode, body)
	for h, want := range map[string]string{"Content-Security-Policy": "script-src 'self'", "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"} {
		assert.Contains(t, resp.Header.Get(h), want, h)
	}
	assert.NotContains(t, body, "<script>", "no inline script")

	// Login: same-origin only; the cookie is HttpOnly and SameSite=Strict.
	post := func(origin, tok string) (int, []*http.Cookie) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/login", strings.NewReader(url.Values{"token": {tok}}.Encode()))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := noRedirect.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		return resp.StatusCode, resp.Cookies()
	}
	code, _ := post("https://evil.example", alice)
	assert.Equal(t, http.StatusForbidden, code, "cross-site login")
	code, _ = post("", alice)
	assert.Equal(t, http.StatusForbidden, code, "login without Origin or Referer")
	code, _ = post(base, "garbage-token")
	assert.Equal(t, http.StatusUnauthorized, code)
	code, cookies := post(base, alice)
	require.Equal(t, http.StatusSeeOther, code)
	var cookie *http.Cookie
	for _, ck := range cookies {
		if ck.Name == dashboard.CookieName {
			cookie = ck
		}
	}
	require.NotNil(t, cookie)
	assert.True(t, cookie.HttpOnly)
	assert.Equal(t, http.SameSiteStrictMode, cookie.SameSite)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/", nil)
	require.NoError(t, err)
	req.AddCookie(cookie)
	withCookie, err := noRedirect.Do(req)
	require.NoError(t, err)
	b, _ := io.ReadAll(withCookie.Body)
	withCookie.Body.Close()
	assert.Equal(t, http.StatusOK, withCookie.StatusCode)
	assert.Contains(t, string(b), "team-a/alpha", "the cookie carries the session")

	resp, _ = get("/static/layout.html", alice)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "templates are not served")
	resp, body = get("/static/app.js", "")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, body, "EventSource")
}
