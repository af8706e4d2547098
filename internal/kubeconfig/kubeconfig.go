// Package kubeconfig turns kubeconfig bytes into a client config, refusing
// exec credential plugins unless allowed and never quoting credentials.
package kubeconfig

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// ErrExecNotAllowed means a kubeconfig asks to run a credential plugin.
var ErrExecNotAllowed = errors.New("kubeconfig uses an exec credential plugin, which this hub refuses: use a token or client certificate, or start flotilla-hub with --allow-exec-credentials")

// ClientLimits are the per-cluster client settings.
type Limits struct {
	Timeout time.Duration
	QPS     float32
	Burst   int
}

// DefaultLimits keep one slow spoke from tying up the hub.
var DefaultLimits = Limits{Timeout: 15 * time.Second, QPS: 50, Burst: 100}

// ParseKubeconfig turns kubeconfig bytes into a rest.Config. Its errors
// never quote the kubeconfig (it holds credentials). It returns a hash of
// the kubeconfig so the pool can tell when credentials rotate.
func Parse(raw []byte, allowExec bool, limits Limits) (*rest.Config, string, error) {
	if len(raw) == 0 {
		return nil, "", errors.New("the kubeconfig is empty")
	}
	cfg, err := clientcmd.Load(raw)
	if err != nil {
		return nil, "", errors.New("the kubeconfig is not valid YAML or not a kubeconfig")
	}
	ctxName := cfg.CurrentContext
	if ctxName == "" && len(cfg.Contexts) == 1 {
		for name := range cfg.Contexts {
			ctxName = name
		}
	}
	kctx, ok := cfg.Contexts[ctxName]
	if !ok {
		return nil, "", fmt.Errorf("the kubeconfig has no current-context (contexts: %d)", len(cfg.Contexts))
	}
	if err := checkAuth(cfg, kctx, allowExec); err != nil {
		return nil, "", err
	}
	rc, err := clientcmd.NewNonInteractiveClientConfig(*cfg, ctxName, &clientcmd.ConfigOverrides{}, nil).ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("the kubeconfig's context %q is incomplete: %s", ctxName, redact(err))
	}
	if _, err := rest.TLSConfigFor(rc); err != nil {
		return nil, "", errors.New("the kubeconfig's TLS settings are invalid (certificate-authority-data, client-certificate-data or client-key-data do not parse)")
	}
	rc.Timeout = limits.Timeout
	rc.QPS = limits.QPS
	rc.Burst = limits.Burst
	rc.UserAgent = "flotilla-hub"
	sum := sha256.Sum256(raw)
	return rc, hex.EncodeToString(sum[:8]), nil
}

func checkAuth(cfg *clientcmdapi.Config, kctx *clientcmdapi.Context, allowExec bool) error {
	if _, ok := cfg.Clusters[kctx.Cluster]; !ok {
		return fmt.Errorf("the kubeconfig's context names cluster %q, which it does not define", kctx.Cluster)
	}
	user, ok := cfg.AuthInfos[kctx.AuthInfo]
	if !ok {
		return fmt.Errorf("the kubeconfig's context names user %q, which it does not define", kctx.AuthInfo)
	}
	if user.Exec != nil && !allowExec {
		return ErrExecNotAllowed
	}
	if user.AuthProvider != nil {
		return errors.New("the kubeconfig uses an auth-provider plugin, which this hub refuses: use a token or client certificate")
	}
	if user.TokenFile != "" || user.ClientCertificate != "" || user.ClientKey != "" || cfg.Clusters[kctx.Cluster].CertificateAuthority != "" {
		return errors.New("the kubeconfig refers to files on disk; embed them (token, client-certificate-data, client-key-data, certificate-authority-data)")
	}
	return nil
}

// redact keeps only the shape of an error from client-go's config loader.
func redact(err error) string {
	msg := err.Error()
	if len(msg) > 200 {
		msg = msg[:200]
	}
	return msg
}
