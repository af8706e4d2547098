package dashboard

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/internal/kube"
)

//go:embed assets
var assets embed.FS

// Options configure a Server. Exactly one of Local and Hub is set.
type Options struct {
	// Local is the one identity of a local dashboard (the kubeconfig's user).
	Local *rest.Config
	// Who names the local identity in the page header.
	Who string
	// Hub is the server's own identity in hub mode: it reviews tokens
	// (TokenReview) and lists namespaces; every page is read with a client
	// of the request's token (Hub's host and CA, no other credential).
	Hub *rest.Config
	// Scheme knows Flotilla's kinds and core/v1.
	Scheme *runtime.Scheme
	// SecureCookies marks the session cookie Secure (serve behind TLS).
	SecureCookies bool
	// Hosts a local dashboard answers to (DNS rebinding): its own address.
	Hosts []string
	// ChangeCheck is how often an open page is told of changes (default 250ms).
	ChangeCheck time.Duration
}

// CookieName holds a hub-mode session's bearer token (HttpOnly, SameSite=Strict).
const CookieName = "flotilla_token"

// Server serves the dashboard.
type Server struct {
	opts   Options
	pages  map[string]*template.Template
	views  *views
	static http.Handler

	mu      sync.Mutex
	reviews map[string]review // token hash → last TokenReview
}

type review struct {
	user string
	ok   bool
	at   time.Time
}

// reviewFor is how long a TokenReview's answer is trusted.
const reviewFor = time.Minute

// New makes a Server.
func New(o Options) (*Server, error) {
	if (o.Local == nil) == (o.Hub == nil) {
		return nil, errors.New("dashboard: give either a local identity or the hub's")
	}
	if o.Scheme == nil {
		s := runtime.NewScheme()
		if err := corev1.AddToScheme(s); err != nil {
			return nil, err
		}
		if err := flotillav1.AddToScheme(s); err != nil {
			return nil, err
		}
		o.Scheme = s
	}
	if o.ChangeCheck <= 0 {
		o.ChangeCheck = 250 * time.Millisecond
	}
	s := &Server{opts: o, pages: map[string]*template.Template{}, views: &views{byKey: map[string]*view{}, idle: 10 * time.Minute}, reviews: map[string]review{}}
	for _, p := range []string{"fleet", "set", "cluster", "app", "login"} {
		t, err := template.ParseFS(assets, "assets/layout.html", "assets/"+p+".html")
		if err != nil {
			return nil, fmt.Errorf("dashboard templates: %w", err)
		}
		s.pages[p] = t
	}
	static, err := fs.Sub(assets, "assets")
	if err != nil {
		return nil, err
	}
	s.static = http.StripPrefix("/static/", http.FileServer(http.FS(onlyStatic{static})))
	return s, nil
}

// onlyStatic serves the script and the stylesheet, not the templates.
type onlyStatic struct{ fs.FS }

func (o onlyStatic) Open(name string) (fs.File, error) {
	if name != "app.js" && name != "style.css" {
		return nil, fs.ErrNotExist
	}
	return o.FS.Open(name)
}

// Serve serves on ln until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_ = srv.Shutdown(shut)
				cancel()
				return
			case <-t.C:
				s.views.sweep()
			}
		}
	}()
	err := srv.Serve(ln)
	s.views.mu.Lock()
	for k, v := range s.views.byKey {
		v.stop()
		delete(s.views.byKey, k)
	}
	s.views.mu.Unlock()
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Handler is the dashboard's HTTP handler.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /static/", s.static)
	mux.HandleFunc("GET /login", s.loginPage)
	mux.HandleFunc("POST /login", s.login)
	mux.HandleFunc("POST /logout", s.logout)
	mux.HandleFunc("GET /events", s.withView(s.events))
	mux.HandleFunc("GET /{$}", s.withView(s.fleet))
	mux.HandleFunc("GET /sets/{ns}/{name}", s.withView(s.set))
	mux.HandleFunc("GET /clusters/{name}", s.withView(s.cluster))
	mux.HandleFunc("GET /apps/{ns}/{name}", s.withView(s.app))
	return s.secure(mux)
}

// secure sets the security headers and refuses foreign Host headers locally.
func (s *Server) secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		if len(s.opts.Hosts) > 0 && !containsFold(s.opts.Hosts, r.Host) {
			http.Error(w, "this dashboard answers only to "+strings.Join(s.opts.Hosts, ", "), http.StatusMisdirectedRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func containsFold(list []string, s string) bool {
	for _, l := range list {
		if strings.EqualFold(l, s) {
			return true
		}
	}
	return false
}

type handler func(w http.ResponseWriter, r *http.Request, v *view, who string)

// withView resolves the request's identity to its view: locally the
// kubeconfig's; on the hub the bearer token's (cookie or Authorization),
// reviewed with TokenReview. No token or a bad one is 401 (a browser is
// sent to /login); an identity that may read nothing is 403.
func (s *Server) withView(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.opts.Local != nil {
			v, err := s.views.get(r.Context(), "local", func(ctx context.Context) (*view, error) { return newView(ctx, s.opts.Local, s.opts.Scheme, nil) })
			if err != nil {
				s.fail(w, r, err)
				return
			}
			h(w, r, v, s.opts.Who)
			return
		}
		token := bearer(r)
		if token == "" {
			s.unauthorized(w, r, "")
			return
		}
		user, err := s.review(r.Context(), token)
		if err != nil {
			s.unauthorized(w, r, err.Error())
			return
		}
		key := hashToken(token)
		v, err := s.views.get(r.Context(), key, func(ctx context.Context) (*view, error) {
			return newView(ctx, s.userConfig(token), s.opts.Scheme, s.namespaces)
		})
		if err != nil {
			s.fail(w, r, err)
			return
		}
		h(w, r, v, user)
	}
}

func bearer(r *http.Request) string {
	if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
		return strings.TrimSpace(strings.TrimPrefix(h, "Bearer "))
	}
	if c, err := r.Cookie(CookieName); err == nil {
		return c.Value
	}
	return ""
}

func hashToken(t string) string {
	sum := sha256.Sum256([]byte(t))
	return hex.EncodeToString(sum[:])
}

// userConfig reads as the token's identity: the hub's address and CA, no
// other credential of the server's.
func (s *Server) userConfig(token string) *rest.Config {
	cfg := rest.AnonymousClientConfig(s.opts.Hub)
	cfg.BearerToken = token
	cfg.QPS, cfg.Burst = 50, 100
	return cfg
}

var errBadToken = errors.New("the token was not accepted: log in again")

// review asks the apiserver who the token is (TokenReview), trusting the
// answer for a minute.
func (s *Server) review(ctx context.Context, token string) (string, error) {
	key := hashToken(token)
	s.mu.Lock()
	rv, ok := s.reviews[key]
	s.mu.Unlock()
	if ok && time.Since(rv.at) < reviewFor {
		if !rv.ok {
			return "", errBadToken
		}
		return rv.user, nil
	}
	cs, err := kubernetes.NewForConfig(s.opts.Hub)
	if err != nil {
		return "", err
	}
	res, err := cs.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("the hub could not review the token: %s", kube.FirstLine(err))
	}
	rv = review{ok: res.Status.Authenticated, user: res.Status.User.Username, at: time.Now()}
	s.mu.Lock()
	for k, old := range s.reviews { // forget stale answers
		if time.Since(old.at) > reviewFor {
			delete(s.reviews, k)
		}
	}
	s.reviews[key] = rv
	s.mu.Unlock()
	if !rv.ok {
		s.views.drop(key)
		return "", errBadToken
	}
	return rv.user, nil
}

// namespaces lists the hub's namespaces with the server's own identity:
// where a user without cluster-wide rights may still read sets.
func (s *Server) namespaces(ctx context.Context) ([]string, error) {
	c, err := client.New(s.opts.Hub, client.Options{Scheme: s.opts.Scheme})
	if err != nil {
		return nil, err
	}
	var list corev1.NamespaceList
	if err := c.List(ctx, &list); err != nil {
		return nil, fmt.Errorf("list namespaces: %s", kube.FirstLine(err))
	}
	out := make([]string, 0, len(list.Items))
	for _, ns := range list.Items {
		out = append(out, ns.Name)
	}
	return out, nil
}

func wantsHTML(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/html") && r.URL.Query().Get("fragment") == ""
}

func (s *Server) unauthorized(w http.ResponseWriter, r *http.Request, msg string) {
	if wantsHTML(r) {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	if msg == "" {
		msg = "no token: log in, or send Authorization: Bearer TOKEN"
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="flotilla"`)
	http.Error(w, msg, http.StatusUnauthorized)
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrNoAccess), apierrors.IsForbidden(err):
		code = http.StatusForbidden
	case apierrors.IsUnauthorized(err):
		s.unauthorized(w, r, err.Error())
		return
	}
	http.Error(w, kube.FirstLine(err), code)
}

// sameOrigin refuses cross-site form posts (CSRF): Origin, else Referer,
// must name this host.
func sameOrigin(r *http.Request) bool {
	for _, h := range []string{r.Header.Get("Origin"), r.Header.Get("Referer")} {
		if h == "" {
			continue
		}
		u, err := url.Parse(h)
		return err == nil && strings.EqualFold(u.Host, r.Host)
	}
	return false
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	if s.opts.Local != nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	s.render(w, r, "login", "Log in", "", "")
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if s.opts.Local != nil || !sameOrigin(r) {
		http.Error(w, "cross-site or local login refused", http.StatusForbidden)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	token := strings.TrimSpace(r.PostFormValue("token"))
	if token == "" {
		w.WriteHeader(http.StatusUnauthorized)
		s.render(w, r, "login", "Log in", "", "Paste a token.")
		return
	}
	if _, err := s.review(r.Context(), token); err != nil {
		w.WriteHeader(http.StatusUnauthorized)
		s.render(w, r, "login", "Log in", "", err.Error())
		return
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: token, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: s.opts.SecureCookies, MaxAge: 8 * 3600})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		http.Error(w, "cross-site logout refused", http.StatusForbidden)
		return
	}
	if t := bearer(r); t != "" {
		s.views.drop(hashToken(t))
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: s.opts.SecureCookies, MaxAge: -1})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

type layoutData struct {
	Title, Who string
	Hub        bool
	Page       any
}

// render writes a page, or only its content for ?fragment=1 (live updates).
func (s *Server) render(w http.ResponseWriter, r *http.Request, page, title, who string, data any) {
	var b bytes.Buffer
	t := s.pages[page]
	var err error
	if r.URL.Query().Get("fragment") != "" {
		err = t.ExecuteTemplate(&b, "content", data)
	} else {
		err = t.ExecuteTemplate(&b, "layout", layoutData{Title: title, Who: who, Hub: s.opts.Hub != nil, Page: data})
	}
	if err != nil {
		http.Error(w, "render the page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(b.Bytes())
}

func (s *Server) fleet(w http.ResponseWriter, r *http.Request, v *view, who string) {
	snap, err := v.read(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.render(w, r, "fleet", "Fleet", who, buildFleet(snap, r.URL.Query()))
}

func (s *Server) set(w http.ResponseWriter, r *http.Request, v *view, who string) {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	set := &flotillav1.ApplicationSet{}
	if err := v.reader.Get(r.Context(), client.ObjectKey{Namespace: ns, Name: name}, set); err != nil {
		s.notFound(w, r, "ApplicationSet "+ns+"/"+name, err)
		return
	}
	snap, err := v.read(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.render(w, r, "set", "ApplicationSet "+name, who, buildSet(snap, set, v.events(r.Context(), ns, "ApplicationSet", name)))
}

func (s *Server) cluster(w http.ResponseWriter, r *http.Request, v *view, who string) {
	snap, err := v.read(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.render(w, r, "cluster", "Cluster "+r.PathValue("name"), who, buildCluster(snap, r.PathValue("name")))
}

func (s *Server) app(w http.ResponseWriter, r *http.Request, v *view, who string) {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	app := &flotillav1.Application{}
	if err := v.reader.Get(r.Context(), client.ObjectKey{Namespace: ns, Name: name}, app); err != nil {
		s.notFound(w, r, "Application "+ns+"/"+name, err)
		return
	}
	s.render(w, r, "app", "Application "+name, who, buildApp(app, v.events(r.Context(), ns, "Application", name)))
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request, what string, err error) {
	if apierrors.IsNotFound(err) || strings.Contains(err.Error(), "unable to get: ") {
		http.Error(w, what+" not found (or not yours to read)", http.StatusNotFound)
		return
	}
	s.fail(w, r, err)
}

// events streams "something changed" (server-sent events) whenever the
// view's watches saw a change, checked every ChangeCheck.
func (s *Server) events(w http.ResponseWriter, r *http.Request, v *view, _ string) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	_, _ = fmt.Fprint(w, "retry: 2000\n\n")
	flusher.Flush()
	seen := v.version.Load()
	tick := time.NewTicker(s.opts.ChangeCheck)
	defer tick.Stop()
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-keepalive.C:
			_, _ = fmt.Fprint(w, ": keepalive\n\n")
			flusher.Flush()
		case <-tick.C:
			v.touch()
			if now := v.version.Load(); now != seen {
				seen = now
				if _, err := fmt.Fprintf(w, "data: %d\n\n", now); err != nil {
					return
				}
				flusher.Flush()
			}
		}
	}
}
