package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/internal/git"
	"github.com/flotilla-dev/flotilla/internal/helmchart"
)

func newRepoCommand(s Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "repo",
		Aliases: []string{"repos", "repository"},
		Short:   "Add, list and remove the hub's repository credentials",
		Long: `Repository credentials live on the hub, as Secrets labelled
flotilla.dev/secret-type=repository in the hub's namespace, with the data
keys url (a URL prefix: the longest one covering a repoURL wins, same scheme,
host and port), username with password or token, or sshPrivateKey with
sshKnownHosts, and optionally caBundle (PEM) for a server with a private CA.
The same Secrets hold Helm repository credentials (https://) and OCI registry
credentials (oci://HOST, by registry host). The hub's git generators use them,
and the hub copies to each cluster exactly the ones its Applications need.`,
	}
	cmd.AddCommand(newRepoAddCommand(s), newRepoListCommand(s), newRepoRemoveCommand(s))
	return cmd
}

type repoOptions struct {
	hubOptions
	prefix, username, sshKeyFile, knownHostsFile, caFile, kind string
	passwordStdin, skipCheck                                   bool
	timeout                                                    time.Duration
	allowLoopback                                              bool
}

func newRepoAddCommand(s Streams) *cobra.Command {
	o := &repoOptions{}
	cmd := &cobra.Command{
		Use:   "add URL (--username U --password-stdin | --ssh-private-key-file F --known-hosts-file K) [--ca-file F] [--type git|helm|oci]",
		Short: "Store credentials for a repository (or a URL prefix), after checking them against the server",
		Example: `  echo "$TOKEN" | flotilla repo add https://git.example.com/platform/deploy.git --username ci --password-stdin
  flotilla repo add https://git.example.com/platform/deploy.git --prefix https://git.example.com/platform --username ci --password-stdin < token.txt
  flotilla repo add ssh://git@git.example.com/platform/deploy.git --ssh-private-key-file ~/.ssh/deploy --known-hosts-file known_hosts
  echo "$PASS" | flotilla repo add https://charts.example.com/stable --type helm --username robot --password-stdin --ca-file ca.pem
  echo "$PASS" | flotilla repo add oci://registry.example.com/charts --username robot --password-stdin`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return o.add(cmd.Context(), s, args[0]) },
	}
	o.bind(cmd, "")
	f := cmd.Flags()
	f.StringVar(&o.prefix, "prefix", "", "store the credentials for this URL prefix (URL must be a repository under it: it is what is checked)")
	f.StringVar(&o.username, "username", "", "HTTPS username (for a token alone, any name the server accepts, e.g. git)")
	f.BoolVar(&o.passwordStdin, "password-stdin", false, "read the password or token from standard input")
	f.StringVar(&o.sshKeyFile, "ssh-private-key-file", "", "SSH private key (PEM) for ssh:// and scp-like URLs")
	f.StringVar(&o.knownHostsFile, "known-hosts-file", "", "known_hosts lines pinning the server's SSH host key")
	f.StringVar(&o.caFile, "ca-file", "", "PEM certificate authority to trust for this server (a private Git server, Helm repository or registry)")
	f.StringVar(&o.kind, "type", "", "what URL is: git (default), helm (a Helm repository, checked through its index.yaml) or oci (a registry; the default for oci:// URLs)")
	f.BoolVar(&o.skipCheck, "skip-check", false, "store without checking against the server (for a server this machine cannot reach)")
	f.DurationVar(&o.timeout, "timeout", 30*time.Second, "how long the check may take")
	f.BoolVar(&o.allowLoopback, "allow-loopback", false, "allow a repository on this machine (127.0.0.1, localhost): for local fleets")
	return cmd
}

// credential reads the flags and files into a Credential.
func (o *repoOptions) credential(in io.Reader, url string) (git.Credential, error) {
	c := git.Credential{URLPrefix: url, Username: o.username}
	if o.prefix != "" {
		c.URLPrefix = o.prefix
	}
	switch {
	case o.passwordStdin && o.sshKeyFile != "":
		return c, fmt.Errorf("use either --password-stdin or --ssh-private-key-file, not both")
	case o.passwordStdin:
		raw, err := io.ReadAll(io.LimitReader(in, 64<<10))
		if err != nil {
			return c, fmt.Errorf("read the password from standard input: %w", err)
		}
		if c.Password = strings.TrimRight(string(raw), "\r\n"); c.Password == "" {
			return c, fmt.Errorf("--password-stdin: standard input is empty")
		}
	case o.sshKeyFile != "":
		key, err := os.ReadFile(o.sshKeyFile)
		if err != nil {
			return c, fmt.Errorf("--ssh-private-key-file: %w", err)
		}
		c.SSHPrivateKey = string(key)
		if o.knownHostsFile == "" {
			return c, fmt.Errorf("--known-hosts-file is required with an SSH key: the hub must know the server's host key (ssh-keyscan HOST > known_hosts, then check it)")
		}
		hosts, err := os.ReadFile(o.knownHostsFile)
		if err != nil {
			return c, fmt.Errorf("--known-hosts-file: %w", err)
		}
		c.SSHKnownHosts = string(hosts)
	default:
		return c, fmt.Errorf("give credentials: --username U --password-stdin, or --ssh-private-key-file F --known-hosts-file K")
	}
	if o.caFile != "" {
		ca, err := os.ReadFile(o.caFile)
		if err != nil {
			return c, fmt.Errorf("--ca-file: %w", err)
		}
		if !strings.Contains(string(ca), "-----BEGIN CERTIFICATE-----") {
			return c, fmt.Errorf("--ca-file %s holds no PEM certificate", o.caFile)
		}
		c.CABundle = string(ca)
	}
	return c, nil
}

// repoKind is what the URL names: git, helm or oci.
func (o *repoOptions) repoKind(url string) (string, error) {
	switch {
	case o.kind == "" && helmchart.IsOCI(url), o.kind == "oci" && helmchart.IsOCI(url):
		return "oci", nil
	case o.kind == "oci":
		return "", fmt.Errorf("--type oci needs an oci:// URL")
	case helmchart.IsOCI(url):
		return "", fmt.Errorf("an oci:// URL is a registry: use --type oci (or leave --type out)")
	case o.kind == "" || o.kind == "git":
		return "git", nil
	case o.kind == "helm":
		return "helm", nil
	}
	return "", fmt.Errorf("unknown --type %q: use git, helm or oci", o.kind)
}

func (o *repoOptions) add(ctx context.Context, s Streams, url string) error {
	cred, err := o.credential(s.In, url)
	if err != nil {
		return err
	}
	if o.prefix != "" && !strings.HasPrefix(url, strings.TrimSuffix(o.prefix, "/")) {
		return fmt.Errorf("%s is not under --prefix %s", git.RedactURL(url), git.RedactURL(o.prefix))
	}
	if err := git.ValidateURLAllowing(cred.URLPrefix, o.allowLoopback); err != nil {
		return err
	}
	kind, err := o.repoKind(url)
	if err != nil {
		return err
	}
	hub, err := o.connect(ctx)
	if err != nil {
		return err
	}
	if !o.skipCheck {
		fmt.Fprintf(s.ErrOut, "Checking the credentials against %s\n", git.RedactURL(url))
		check := git.CheckCredential
		if kind != "git" {
			check = helmchart.CheckCredential
		}
		if err := check(ctx, url, cred, o.allowLoopback, o.timeout); err != nil {
			return fmt.Errorf("%w; nothing was stored", err)
		}
	}
	ns := hub.hubNamespace(ctx)
	secret := &corev1.Secret{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: repoSecretName(cred.URLPrefix), Namespace: ns,
			Labels: map[string]string{flotillav1.LabelSecretType: "repository", flotillav1.LabelManagedBy: "flotilla-cli"}},
		Type: corev1.SecretTypeOpaque,
		StringData: map[string]string{git.SecretKeyURL: cred.URLPrefix, git.SecretKeyUsername: cred.Username, git.SecretKeyPassword: cred.Password,
			git.SecretKeySSHPrivateKey: cred.SSHPrivateKey, git.SecretKeySSHKnownHosts: cred.SSHKnownHosts, git.SecretKeyCABundle: cred.CABundle,
			git.SecretKeyType: kind},
	}
	for k, v := range secret.StringData {
		if v == "" {
			delete(secret.StringData, k)
		}
	}
	existing := &corev1.Secret{}
	switch err := hub.client.Get(ctx, client.ObjectKeyFromObject(secret), existing); {
	case err == nil:
		existing.Data, existing.StringData, existing.Labels = nil, secret.StringData, secret.Labels
		err = hub.client.Update(ctx, existing)
		if err != nil {
			return fmt.Errorf("update Secret %s/%s on the hub: %w", ns, secret.Name, err)
		}
	case apierrors.IsNotFound(err):
		if err := hub.client.Create(ctx, secret); err != nil {
			return fmt.Errorf("create Secret %s/%s on the hub: %w", ns, secret.Name, err)
		}
	default:
		return fmt.Errorf("read Secret %s/%s on the hub: %w", ns, secret.Name, err)
	}
	fmt.Fprintf(s.Out, "Stored %s as Secret %s/%s.\n", cred, ns, secret.Name)
	return nil
}

// repoSecretName is the Secret of a URL prefix: one per prefix.
func repoSecretName(prefix string) string {
	sum := sha256.Sum256([]byte(strings.TrimSuffix(prefix, "/")))
	return "repo-" + hex.EncodeToString(sum[:8])
}

// RepoCredential is one row of `flotilla repo list -o json` (no secret).
type RepoCredential struct {
	URL      string      `json:"url"`
	Type     string      `json:"type"`
	Username string      `json:"username,omitempty"`
	Secret   string      `json:"secret"`
	Created  metav1.Time `json:"created"`
}

func newRepoListCommand(s Streams) *cobra.Command {
	o := &repoOptions{}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the hub's repository credentials (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(o.output, "table", "json", "yaml"); err != nil {
				return err
			}
			hub, err := o.connect(cmd.Context())
			if err != nil {
				return err
			}
			rows, err := repoCredentials(cmd.Context(), hub)
			if err != nil {
				return err
			}
			switch o.output {
			case "json":
				return printJSON(s.Out, rows)
			case "yaml":
				return printYAML(s.Out, rows)
			}
			if len(rows) == 0 {
				_, err := io.WriteString(s.Out, "No repository credentials: add some with 'flotilla repo add'.\n")
				return err
			}
			t := &table{header: []string{"URL", "TYPE", "USERNAME", "SECRET", "AGE"}}
			for _, r := range rows {
				t.add(r.URL, r.Type, r.Username, r.Secret, age(r.Created.Time, time.Now()))
			}
			return t.write(s.Out)
		},
	}
	o.bind(cmd, "table, json or yaml")
	return cmd
}

func repoCredentials(ctx context.Context, hub *conn) ([]RepoCredential, error) {
	ns := hub.hubNamespace(ctx)
	list := &corev1.SecretList{}
	if err := hub.client.List(ctx, list, client.InNamespace(ns), client.MatchingLabels{flotillav1.LabelSecretType: "repository"}); err != nil {
		return nil, fmt.Errorf("list repository Secrets in %s on the hub: %w", ns, err)
	}
	rows := []RepoCredential{}
	for _, sec := range list.Items {
		typ := string(sec.Data[git.SecretKeyType])
		if typ == "" || typ == "git" {
			typ = "git (https)"
			if len(sec.Data[git.SecretKeySSHPrivateKey]) > 0 {
				typ = "git (ssh)"
			}
		}
		rows = append(rows, RepoCredential{URL: string(sec.Data[git.SecretKeyURL]), Type: typ, Username: string(sec.Data[git.SecretKeyUsername]),
			Secret: sec.Name, Created: sec.CreationTimestamp})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].URL < rows[j].URL })
	return rows, nil
}

func newRepoRemoveCommand(s Streams) *cobra.Command {
	o := &repoOptions{}
	cmd := &cobra.Command{
		Use:   "remove URL",
		Short: "Remove the credentials stored for a URL prefix",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			hub, err := o.connect(ctx)
			if err != nil {
				return err
			}
			rows, err := repoCredentials(ctx, hub)
			if err != nil {
				return err
			}
			want := strings.TrimSuffix(args[0], "/")
			for _, r := range rows {
				if strings.TrimSuffix(r.URL, "/") == want {
					sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: hub.hubNamespace(ctx), Name: r.Secret}}
					if err := client.IgnoreNotFound(hub.client.Delete(ctx, sec)); err != nil {
						return fmt.Errorf("delete Secret %s on the hub: %w", r.Secret, err)
					}
					fmt.Fprintf(s.Out, "Removed the credentials for %s (Secret %s).\n", r.URL, r.Secret)
					return nil
				}
			}
			return fmt.Errorf("no credentials stored for %s: see 'flotilla repo list'", git.RedactURL(args[0]))
		},
	}
	o.bind(cmd, "")
	return cmd
}
