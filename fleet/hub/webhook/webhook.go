// Package webhook receives Git push events on the hub (GitHub, GitLab,
// Gitea/Forgejo, Bitbucket Cloud), verifies each one (HMAC-SHA256 or
// GitLab's token, against the Secret flotilla-webhook), and asks every
// ApplicationSet and Application that uses the pushed repository to
// re-read Git at once (the flotilla.dev/refresh annotation), so a commit
// needs no poll to start rolling out.
package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/generators"
	"github.com/flotilla-dev/flotilla/internal/git"
)

// Names.
const (
	// SecretName holds the webhook secrets in the hub's namespace: one key
	// per provider (github, gitlab, gitea, bitbucket) or one shared key "secret".
	SecretName = "flotilla-webhook"
	// Path is where the hub listens.
	Path = "/api/webhook"
	// MaxBody bounds a request body.
	MaxBody = 1 << 20
)

// Requests counts webhook requests by provider and result.
var Requests = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "flotilla_webhook_requests_total", Help: "Git webhook requests by provider and result (accepted, unauthorized, ignored, invalid, too-large, error).",
}, []string{"provider", "result"})

func init() { crmetrics.Registry.MustRegister(Requests) }

// Handler serves Path.
type Handler struct {
	Client    client.Client
	Namespace string // the hub's: where SecretName is
	Log       logr.Logger
}

// push is what a verified event says: which repository.
type push struct {
	provider string
	urls     []string
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	provider := providerOf(r.Header)
	if r.Method != http.MethodPost {
		http.Error(w, "POST a push event", http.StatusMethodNotAllowed)
		return
	}
	if provider == "" {
		Requests.WithLabelValues("unknown", "invalid").Inc()
		http.Error(w, "not a GitHub, GitLab, Gitea/Forgejo or Bitbucket event", http.StatusBadRequest)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		Requests.WithLabelValues(provider, "too-large").Inc()
		http.Error(w, "the body is over 1 MiB", http.StatusRequestEntityTooLarge)
		return
	}
	secret, err := h.secret(r.Context(), provider)
	if err != nil {
		Requests.WithLabelValues(provider, "error").Inc()
		h.Log.Error(err, "Webhook secret unavailable")
		http.Error(w, "the hub has no webhook secret for "+provider+" (Secret "+SecretName+")", http.StatusServiceUnavailable)
		return
	}
	if !verify(provider, r.Header, body, secret) {
		Requests.WithLabelValues(provider, "unauthorized").Inc()
		http.Error(w, "signature or token missing or wrong", http.StatusUnauthorized)
		return
	}
	if !isPush(provider, r.Header) {
		Requests.WithLabelValues(provider, "ignored").Inc()
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, "not a push event: ignored\n")
		return
	}
	p, err := parse(provider, body)
	if err != nil {
		Requests.WithLabelValues(provider, "invalid").Inc()
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	n, err := h.refresh(r.Context(), p)
	if err != nil {
		Requests.WithLabelValues(provider, "error").Inc()
		h.Log.Error(err, "Webhook refresh failed", "provider", provider)
		http.Error(w, "refresh failed: "+err.Error(), http.StatusInternalServerError)
		return
	}
	Requests.WithLabelValues(provider, "accepted").Inc()
	h.Log.Info("Push received", "provider", provider, "repositories", p.urls, "refreshed", n)
	w.WriteHeader(http.StatusAccepted)
	_, _ = fmt.Fprintf(w, "refreshed %d ApplicationSets and Applications\n", n)
}

func providerOf(h http.Header) string {
	switch {
	case h.Get("X-GitHub-Event") != "":
		return "github"
	case h.Get("X-Gitlab-Event") != "":
		return "gitlab"
	case h.Get("X-Gitea-Event") != "" || h.Get("X-Forgejo-Event") != "" || h.Get("X-Gogs-Event") != "":
		return "gitea"
	case h.Get("X-Event-Key") != "" && (h.Get("X-Hook-UUID") != "" || strings.HasPrefix(h.Get("User-Agent"), "Bitbucket")):
		return "bitbucket"
	}
	return ""
}

func isPush(provider string, h http.Header) bool {
	switch provider {
	case "github":
		return h.Get("X-GitHub-Event") == "push"
	case "gitlab":
		return h.Get("X-Gitlab-Event") == "Push Hook" || h.Get("X-Gitlab-Event") == "Tag Push Hook"
	case "gitea":
		return h.Get("X-Gitea-Event") == "push" || h.Get("X-Forgejo-Event") == "push" || h.Get("X-Gogs-Event") == "push"
	case "bitbucket":
		return h.Get("X-Event-Key") == "repo:push"
	}
	return false
}

func (h *Handler) secret(ctx context.Context, provider string) ([]byte, error) {
	s := &corev1.Secret{}
	if err := h.Client.Get(ctx, client.ObjectKey{Namespace: h.Namespace, Name: SecretName}, s); err != nil {
		return nil, err
	}
	if v := s.Data[provider]; len(v) > 0 {
		return v, nil
	}
	if v := s.Data["secret"]; len(v) > 0 {
		return v, nil
	}
	return nil, fmt.Errorf("secret %s/%s has no key %q or \"secret\"", h.Namespace, SecretName, provider)
}

// verify checks the provider's signature (HMAC-SHA256 of the body) or, for
// GitLab, its token, in constant time.
func verify(provider string, h http.Header, body, secret []byte) bool {
	if provider == "gitlab" {
		tok := h.Get("X-Gitlab-Token")
		return tok != "" && subtle.ConstantTimeCompare([]byte(tok), secret) == 1
	}
	var sig string
	switch provider {
	case "github", "bitbucket":
		sig = strings.TrimPrefix(h.Get("X-Hub-Signature-256"), "sha256=")
		if sig == "" {
			sig = strings.TrimPrefix(h.Get("X-Hub-Signature"), "sha256=")
		}
	case "gitea":
		for _, k := range []string{"X-Gitea-Signature", "X-Forgejo-Signature", "X-Gogs-Signature"} {
			if sig = h.Get(k); sig != "" {
				break
			}
		}
	}
	got, err := hex.DecodeString(sig)
	if err != nil || len(got) != sha256.Size {
		return false
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}

// Sign is GitHub's, Gitea's and Bitbucket's signature of body (for tests and tools).
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// parse reads the pushed repository's URLs from the event.
func parse(provider string, body []byte) (*push, error) {
	var ev struct {
		Repository struct {
			CloneURL string `json:"clone_url"`
			SSHURL   string `json:"ssh_url"`
			HTMLURL  string `json:"html_url"`
			GitURL   string `json:"git_url"`
			URL      string `json:"url"`
			Homepage string `json:"homepage"`
			// GitLab
			GitHTTPURL string `json:"git_http_url"`
			GitSSHURL  string `json:"git_ssh_url"`
			// Bitbucket
			FullName string `json:"full_name"`
			Links    struct {
				HTML struct {
					Href string `json:"href"`
				} `json:"html"`
			} `json:"links"`
		} `json:"repository"`
		Project struct {
			GitHTTPURL string `json:"git_http_url"`
			GitSSHURL  string `json:"git_ssh_url"`
			WebURL     string `json:"web_url"`
		} `json:"project"`
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		return nil, errors.New("the body is not a JSON push event")
	}
	r := ev.Repository
	urls := []string{r.CloneURL, r.SSHURL, r.HTMLURL, r.GitURL, r.URL, r.GitHTTPURL, r.GitSSHURL, ev.Project.GitHTTPURL, ev.Project.GitSSHURL, ev.Project.WebURL, r.Links.HTML.Href}
	if provider == "bitbucket" && r.FullName != "" {
		urls = append(urls, "https://bitbucket.org/"+r.FullName)
	}
	p := &push{provider: provider}
	for _, u := range urls {
		if u != "" {
			p.urls = append(p.urls, u)
		}
	}
	if len(p.urls) == 0 {
		return nil, errors.New("the event names no repository")
	}
	return p, nil
}

// Normalize is git.RepositoryKey: how a pushed URL matches a repoURL.
func Normalize(raw string) string { return git.RepositoryKey(raw) }

// refresh annotates every set that reads a pushed repository (in a Git
// generator, its template, or one of its Applications) and every
// Application of no set that does.
func (h *Handler) refresh(ctx context.Context, p *push) (int, error) {
	pushed := map[string]bool{}
	for _, u := range p.urls {
		if n := Normalize(u); n != "" {
			pushed[n] = true
		}
	}
	uses := func(u string) bool { return pushed[Normalize(u)] }
	var sets flotillav1.ApplicationSetList
	if err := h.Client.List(ctx, &sets); err != nil {
		return 0, err
	}
	var apps flotillav1.ApplicationList
	if err := h.Client.List(ctx, &apps); err != nil {
		return 0, err
	}
	setUses := map[string]bool{}
	var loose []*flotillav1.Application
	for i := range apps.Items {
		a := &apps.Items[i]
		if flotillav1.IsSpokeCopy(a) || !uses(a.Spec.Source.RepoURL) {
			continue
		}
		if set := a.Labels[flotillav1.LabelApplicationSet]; set != "" {
			setUses[a.Namespace+"/"+set] = true
		} else {
			loose = append(loose, a)
		}
	}
	value := fmt.Sprintf("webhook/%s/%d", p.provider, time.Now().UnixNano())
	n := 0
	for i := range sets.Items {
		s := &sets.Items[i]
		if !setUses[s.Namespace+"/"+s.Name] && !setReads(s, uses) {
			continue
		}
		if err := annotate(ctx, h.Client, s, value); err != nil {
			return n, err
		}
		n++
	}
	for _, a := range loose {
		if err := annotate(ctx, h.Client, a, value); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func setReads(s *flotillav1.ApplicationSet, uses func(string) bool) bool {
	if uses(s.Spec.Template.Spec.Source.RepoURL) {
		return true
	}
	var visit func(spec *generators.Spec) bool
	visit = func(spec *generators.Spec) bool {
		if spec.Git != nil && uses(spec.Git.RepoURL) {
			return true
		}
		for _, c := range []*generators.Combination{spec.Matrix, spec.Merge} {
			if c != nil {
				for i := range c.Generators {
					if visit(&c.Generators[i]) {
						return true
					}
				}
			}
		}
		return false
	}
	for i := range s.Spec.Generators {
		if spec, err := generators.FromAPI(&s.Spec.Generators[i]); err == nil && visit(spec) {
			return true
		}
	}
	return false
}

func annotate(ctx context.Context, c client.Client, o client.Object, value string) error {
	patch := fmt.Appendf(nil, `{"metadata":{"annotations":{%q:%q}}}`, flotillav1.AnnotationRefresh, value)
	return client.IgnoreNotFound(c.Patch(ctx, o, client.RawPatch("application/merge-patch+json", patch)))
}
