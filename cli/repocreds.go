package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/internal/git"
	"github.com/flotilla-dev/flotilla/internal/yamlbound"
)

// repoCredsFlags say where generate, diff and render find repository
// credentials: a local file of credential Secrets, or the hub's.
type repoCredsFlags struct {
	file    string
	fromHub bool
}

func (f *repoCredsFlags) bind(fs *pflag.FlagSet, hubFlag bool) {
	fs.StringVar(&f.file, "repo-creds", "", "repository credentials for offline use: a YAML file of Secrets in the hub's format (url, username/password or token, sshPrivateKey/sshKnownHosts, caBundle), e.g. a copy of 'kubectl get secrets -l flotilla.dev/secret-type=repository -o yaml'")
	if hubFlag {
		fs.BoolVar(&f.fromHub, "repo-creds-from-hub", false, "use the hub's repository credentials (read with your kubeconfig: you need get/list on Secrets in the hub's namespace)")
	}
}

// source is the credentials to use: nil (anonymous) when neither is given.
// hub connects to the hub when asked for its credentials.
func (f *repoCredsFlags) source(ctx context.Context, hub func(context.Context) (*conn, error)) (git.CredentialSource, error) {
	switch {
	case f.file != "" && f.fromHub:
		return nil, fmt.Errorf("use either --repo-creds or --repo-creds-from-hub, not both")
	case f.file != "":
		return credentialsFile(f.file)
	case f.fromHub:
		c, err := hub(ctx)
		if err != nil {
			return nil, err
		}
		return hubCredentials(ctx, c)
	}
	return nil, nil
}

// hubCredentials reads the hub's credential Secrets once (a CLI run is short).
func hubCredentials(ctx context.Context, hub *conn) (git.CredentialSource, error) {
	ns := hub.hubNamespace(ctx)
	var list corev1.SecretList
	if err := hub.client.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{flotillav1.LabelSecretType: git.SecretTypeRepository}); err != nil {
		return nil, fmt.Errorf("read the hub's repository credentials (Secrets in %s): %w", ns, err)
	}
	return git.CredentialsFromSecrets(list.Items), nil
}

// credentialsFile reads Secrets (documents, or a List) from a file.
func credentialsFile(name string) (git.CredentialSource, error) {
	fh, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("--repo-creds: %w", err)
	}
	defer fh.Close()
	raw, err := io.ReadAll(io.LimitReader(fh, 8<<20))
	if err != nil {
		return nil, fmt.Errorf("--repo-creds: %w", err)
	}
	if err := yamlbound.Check(raw, yamlbound.Default); err != nil {
		return nil, fmt.Errorf("--repo-creds %s: %w", name, err)
	}
	var secrets []corev1.Secret
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("--repo-creds %s: document %d cannot be read", name, i+1)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		var probe struct {
			Kind  string          `json:"kind"`
			Items []corev1.Secret `json:"items"`
		}
		if err := yaml.Unmarshal(doc, &probe); err != nil {
			return nil, fmt.Errorf("--repo-creds %s: document %d does not parse (the error is not quoted: it could hold a secret)", name, i+1)
		}
		if probe.Kind == "List" || probe.Kind == "SecretList" {
			secrets = append(secrets, probe.Items...)
			continue
		}
		var s corev1.Secret
		if err := yaml.Unmarshal(doc, &s); err != nil || (s.Kind != "" && s.Kind != "Secret") {
			return nil, fmt.Errorf("--repo-creds %s: document %d is not a Secret", name, i+1)
		}
		secrets = append(secrets, s)
	}
	for i := range secrets {
		s := &secrets[i]
		if s.Data == nil {
			s.Data = map[string][]byte{}
		}
		for k, v := range s.StringData {
			s.Data[k] = []byte(v)
		}
	}
	creds := git.CredentialsFromSecrets(secrets)
	if len(creds) == 0 {
		return nil, fmt.Errorf("--repo-creds %s holds no credential Secret (each needs data.url or stringData.url)", name)
	}
	return creds, nil
}
