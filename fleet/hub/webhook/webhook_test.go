package webhook_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/yaml"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/hub/webhook"
)

const secret = "hook-s3cret"

func fixture(t *testing.T) client.Client {
	s := runtime.NewScheme()
	require.NoError(t, corev1.AddToScheme(s))
	require.NoError(t, flotillav1.AddToScheme(s))
	gitSet := &flotillav1.ApplicationSet{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "by-git-generator"}}
	require.NoError(t, yaml.Unmarshal([]byte(`[{matrix: {generators: [{list: {elements: [{a: b}]}}, {git: {repoURL: "git@github.com:org/deploy.git", revision: main, directories: [{path: "apps/*"}]}}]}}]`), &gitSet.Spec.Generators))
	templated := &flotillav1.ApplicationSet{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "templated"}}
	templated.Spec.Template.Spec.Source.RepoURL = "{{ .repo }}"
	other := &flotillav1.ApplicationSet{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "other"}}
	other.Spec.Template.Spec.Source.RepoURL = "https://github.com/org/other.git"
	app := func(name, set, repo string) *flotillav1.Application {
		a := &flotillav1.Application{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: name, Labels: map[string]string{}}}
		if set != "" {
			a.Labels[flotillav1.LabelApplicationSet] = set
		}
		a.Spec.Source.RepoURL = repo
		return a
	}
	return fake.NewClientBuilder().WithScheme(s).WithObjects(
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "flotilla-system", Name: webhook.SecretName}, Data: map[string][]byte{"secret": []byte(secret), "gitlab": []byte("gitlab-token")}},
		gitSet, templated, other,
		app("templated-1", "templated", "https://GitHub.com/Org/Deploy"),
		app("hand-made", "", "ssh://git@github.com:22/org/deploy.git"),
		app("unrelated", "", "https://github.com/org/other.git"),
	).Build()
}

func refreshed(t *testing.T, c client.Client) []string {
	var out []string
	var sets flotillav1.ApplicationSetList
	require.NoError(t, c.List(t.Context(), &sets))
	for _, s := range sets.Items {
		if s.Annotations[flotillav1.AnnotationRefresh] != "" {
			out = append(out, "set/"+s.Name)
		}
	}
	var apps flotillav1.ApplicationList
	require.NoError(t, c.List(t.Context(), &apps))
	for _, a := range apps.Items {
		if a.Annotations[flotillav1.AnnotationRefresh] != "" {
			out = append(out, "app/"+a.Name)
		}
	}
	return out
}

// TestWebhook: each provider's signed push refreshes exactly the sets and
// Applications that use the repository (however its URL is spelled);
// unsigned, badly signed, oversized and non-push requests change nothing.
func TestWebhook(t *testing.T) {
	github := `{"ref":"refs/heads/main","repository":{"clone_url":"https://github.com/org/deploy.git","ssh_url":"git@github.com:org/deploy.git","html_url":"https://github.com/org/deploy"}}`
	gitlab := `{"object_kind":"push","project":{"git_http_url":"https://github.com/org/deploy.git","git_ssh_url":"git@github.com:org/deploy.git"}}`
	bitbucket := `{"repository":{"full_name":"org/deploy","links":{"html":{"href":"https://bitbucket.org/org/deploy"}}}}`
	want := []string{"set/by-git-generator", "set/templated", "app/hand-made"}
	cases := []struct {
		name    string
		body    string
		headers map[string]string
		code    int
		want    []string
	}{
		{"github", github, map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + webhook.Sign([]byte(secret), []byte(github))}, http.StatusAccepted, want},
		{"gitlab", gitlab, map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "gitlab-token"}, http.StatusAccepted, want},
		{"gitea", github, map[string]string{"X-Gitea-Event": "push", "X-Gitea-Signature": webhook.Sign([]byte(secret), []byte(github))}, http.StatusAccepted, want},
		{"forgejo", github, map[string]string{"X-Forgejo-Event": "push", "X-Forgejo-Signature": webhook.Sign([]byte(secret), []byte(github))}, http.StatusAccepted, want},
		{"bitbucket (another host: nothing uses it)", bitbucket, map[string]string{"X-Event-Key": "repo:push", "X-Hook-UUID": "x", "X-Hub-Signature": "sha256=" + webhook.Sign([]byte(secret), []byte(bitbucket))}, http.StatusAccepted, nil},
		{"unsigned", github, map[string]string{"X-GitHub-Event": "push"}, http.StatusUnauthorized, nil},
		{"badly signed", github, map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + webhook.Sign([]byte("wrong"), []byte(github))}, http.StatusUnauthorized, nil},
		{"signed for another body", github, map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + webhook.Sign([]byte(secret), []byte(gitlab))}, http.StatusUnauthorized, nil},
		{"wrong GitLab token", gitlab, map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "nope"}, http.StatusUnauthorized, nil},
		{"not a push", github, map[string]string{"X-GitHub-Event": "issues", "X-Hub-Signature-256": "sha256=" + webhook.Sign([]byte(secret), []byte(github))}, http.StatusAccepted, nil},
		{"no provider", github, nil, http.StatusBadRequest, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := fixture(t)
			h := &webhook.Handler{Client: c, Namespace: "flotilla-system", Log: logr.Discard()}
			req := httptest.NewRequest(http.MethodPost, webhook.Path, strings.NewReader(tc.body))
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			assert.Equal(t, tc.code, rec.Code, rec.Body.String())
			assert.ElementsMatch(t, tc.want, refreshed(t, c))
			assert.NotContains(t, rec.Body.String(), secret)
		})
	}
	t.Run("oversized", func(t *testing.T) {
		c := fixture(t)
		big := bytes.Repeat([]byte("x"), webhook.MaxBody+1)
		req := httptest.NewRequest(http.MethodPost, webhook.Path, bytes.NewReader(big))
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-Hub-Signature-256", "sha256="+webhook.Sign([]byte(secret), big))
		rec := httptest.NewRecorder()
		(&webhook.Handler{Client: c, Namespace: "flotilla-system", Log: logr.Discard()}).ServeHTTP(rec, req)
		assert.Equal(t, http.StatusRequestEntityTooLarge, rec.Code)
		assert.Empty(t, refreshed(t, c))
	})
}

func TestNormalize(t *testing.T) {
	for _, u := range []string{"https://github.com/Org/Deploy.git", "git@github.com:org/deploy.git", "ssh://git@github.com:22/org/deploy", "http://user@GitHub.com/org/deploy/"} {
		assert.Equal(t, "github.com/org/deploy", webhook.Normalize(u), u)
	}
	assert.Empty(t, webhook.Normalize("not a url"))
	assert.NotEqual(t, webhook.Normalize("https://github.com/org/deploy"), webhook.Normalize("https://github.com/org/deploy2"), "a longer name is another repository")
}
