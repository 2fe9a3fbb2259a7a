package exampleutil

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/sluicehq/sluice/dstream"
)

// testPKI is a CA made for one test, with a certificate for a broker on
// 127.0.0.1 and one for a client, each written as PEM files in dir.
type testPKI struct {
	dir              string
	caFile           string
	pool             *x509.CertPool
	server           tls.Certificate
	clientCert       string
	clientKey        string
	otherCA          string // a CA that signed nothing here
	notPEM, junkCert string
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	p := &testPKI{dir: dir, pool: x509.NewCertPool()}
	caKey, caDER := selfSigned(t, "sluice test CA")
	ca, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)
	p.pool.AddCert(ca)
	p.caFile = writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)

	issue := func(name string, usage x509.ExtKeyUsage, ips ...net.IP) (*ecdsa.PrivateKey, []byte) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(time.Now().UnixNano()),
			Subject:      pkix.Name{CommonName: name},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			IPAddresses:  ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		require.NoError(t, err)
		return key, der
	}
	skey, sder := issue("broker", x509.ExtKeyUsageServerAuth, net.ParseIP("127.0.0.1"))
	p.server = tls.Certificate{Certificate: [][]byte{sder}, PrivateKey: skey}
	ckey, cder := issue("job", x509.ExtKeyUsageClientAuth)
	p.clientCert = writePEM(t, dir, "client.pem", "CERTIFICATE", cder)
	kder, err := x509.MarshalECPrivateKey(ckey)
	require.NoError(t, err)
	p.clientKey = writePEM(t, dir, "client-key.pem", "EC PRIVATE KEY", kder)

	_, otherDER := selfSigned(t, "another CA")
	p.otherCA = writePEM(t, dir, "other-ca.pem", "CERTIFICATE", otherDER)
	p.notPEM = filepath.Join(dir, "not.pem")
	require.NoError(t, os.WriteFile(p.notPEM, []byte("not a certificate\n"), 0o600))
	p.junkCert = writePEM(t, dir, "junk.pem", "CERTIFICATE", []byte("junk"))
	return p
}

func selfSigned(t *testing.T, name string) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	return key, der
}

func writePEM(t *testing.T, dir, name, kind string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600))
	return path
}

// startSecured starts a kfake cluster holding the goodbad topic, with the
// given TLS and SASL options, and returns its address.
func startSecured(t *testing.T, opts ...kfake.Opt) string {
	t.Helper()
	addr, _ := startSecuredCluster(t, opts...)
	return addr
}

func startSecuredCluster(t *testing.T, opts ...kfake.Opt) (string, *kfake.Cluster) {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(2, goodBad.Topic)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c.ListenAddrs()[0], c
}

// runUntilRecords runs the goodbad job with args until a batch has read
// records, and returns its exit status, output and the records it read.
func runUntilRecords(t *testing.T, args ...string) (code int, stdout, stderr string, read int64) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	c := &counting{onBatch: func(b dstream.Batch[string]) error {
		if b.Len() > 0 {
			cancel()
		}
		return nil
	}}
	base := []string{"--checkpoint", "", "--http", "", "--batch", "100ms", "--generate", "200", "--duration", "20s"}
	code, stdout, stderr = run(t, ctx, c, append(base, args...)...)
	return code, stdout, stderr, c.good.Load() + c.bad.Load()
}

func TestSecurityFlagsRefused(t *testing.T) {
	pki := newTestPKI(t)
	b := []string{"--brokers", "127.0.0.1:9092"}
	cases := []struct {
		name     string
		args     []string
		password string
		want     string
	}{
		{"tls with the embedded broker", []string{"--tls"}, "",
			"--tls secures the connection to --brokers, and without --brokers the example starts its own plain broker; pass --brokers or drop --tls."},
		{"sasl with the embedded broker", []string{"--sasl-mechanism", "plain", "--sasl-user", "u"}, "pw",
			"--sasl-mechanism secures the connection to --brokers, and without --brokers the example starts its own plain broker; pass --brokers or drop --sasl-mechanism."},
		{"cert without key", append(b, "--tls-cert", pki.clientCert), "",
			"--tls-cert " + pki.clientCert + " needs the certificate's private key; pass it with --tls-key FILE."},
		{"key without cert", append(b, "--tls-key", pki.clientKey), "",
			"--tls-key " + pki.clientKey + " needs the certificate it belongs to; pass it with --tls-cert FILE."},
		{"missing CA file", append(b, "--tls-ca", filepath.Join(pki.dir, "nope.pem")), "",
			"--tls-ca " + filepath.Join(pki.dir, "nope.pem") + " cannot be read (no such file or directory); name a PEM file of CA certificates."},
		{"CA file without PEM", append(b, "--tls-ca", pki.notPEM), "",
			"--tls-ca " + pki.notPEM + " holds no PEM certificate; name a file with -----BEGIN CERTIFICATE----- blocks."},
		{"CA file with a bad certificate", append(b, "--tls-ca", pki.junkCert), "",
			"--tls-ca " + pki.junkCert + " holds no PEM certificate; name a file with -----BEGIN CERTIFICATE----- blocks."},
		{"key that is not the cert's", append(b, "--tls-cert", pki.clientCert, "--tls-key", pki.clientCert), "",
			"--tls-cert " + pki.clientCert + " and --tls-key " + pki.clientCert + " are not a PEM certificate and its private key (tls: found a certificate rather than a key in the PEM for the private key); pass the pair the CA issued."},
		{"skip verify with a CA", append(b, "--tls-ca", pki.caFile, "--tls-insecure-skip-verify"), "",
			"--tls-insecure-skip-verify turns off the check that --tls-ca " + pki.caFile + " is for; drop one of them."},
		{"unknown mechanism", append(b, "--sasl-mechanism", "gssapi", "--sasl-user", "u"), "pw",
			`--sasl-mechanism "gssapi" is not a mechanism; pass plain, scram-sha-256 or scram-sha-512.`},
		{"mechanism without user", append(b, "--sasl-mechanism", "plain"), "pw",
			"--sasl-mechanism plain needs a user; pass --sasl-user NAME and the password in SLUICE_SASL_PASSWORD."},
		{"user without mechanism", append(b, "--sasl-user", "alice"), "pw",
			"--sasl-user alice needs a mechanism; pass --sasl-mechanism plain, scram-sha-256 or scram-sha-512."},
		{"user without password", append(b, "--sasl-mechanism", "scram-sha-256", "--sasl-user", "alice"), "",
			"--sasl-user alice needs a password, and SLUICE_SASL_PASSWORD is not set; set it in the environment (read -rs SLUICE_SASL_PASSWORD; export SLUICE_SASL_PASSWORD) and run again."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(PasswordEnv, tc.password)
			_, err := ParseFlags(testSpec, tc.args, io.Discard)
			var ue *UsageError
			require.ErrorAs(t, err, &ue)
			require.Equal(t, tc.want, ue.Sentence)
		})
	}
}

func TestSecurityFlagsBuildClientOptions(t *testing.T) {
	pki := newTestPKI(t)
	t.Setenv(PasswordEnv, "pw")
	cfg, err := ParseFlags(testSpec, []string{"--brokers", "127.0.0.1:9092"}, io.Discard)
	require.NoError(t, err)
	require.False(t, cfg.Security.Enabled())
	require.Empty(t, cfg.Security.ClientOpts(), "no TLS or SASL without the flags")

	cfg, err = ParseFlags(testSpec, []string{"--brokers", "127.0.0.1:9092", "--tls-ca", pki.caFile, "--sasl-mechanism", "SCRAM-SHA-512", "--sasl-user", "alice"}, io.Discard)
	require.NoError(t, err)
	require.True(t, cfg.Security.TLS, "--tls-ca implies --tls")
	require.Equal(t, "scram-sha-512", cfg.Security.Mechanism)
	require.Len(t, cfg.Security.ClientOpts(), 2)
	require.Equal(t, " -X security.protocol=SASL_SSL -X ssl.ca.location="+pki.caFile+
		` -X sasl.mechanisms=SCRAM-SHA-512 -X sasl.username=alice -X sasl.password="$SLUICE_SASL_PASSWORD"`, cfg.Security.kcatFlags())
	require.Empty(t, cfg.Security.notes())

	cfg, err = ParseFlags(testSpec, []string{"--brokers", "127.0.0.1:9092", "--sasl-mechanism", "plain", "--sasl-user", "o'brien"}, io.Discard)
	require.NoError(t, err)
	require.False(t, cfg.Security.TLS)
	require.Equal(t, ` -X security.protocol=SASL_PLAINTEXT -X sasl.mechanisms=PLAIN -X sasl.username='o'\''brien' -X sasl.password="$SLUICE_SASL_PASSWORD"`, cfg.Security.kcatFlags())
	require.Equal(t, []string{"SASL PLAIN without --tls sends the password in clear text; add --tls (and --tls-ca) if the listener offers TLS"}, cfg.Security.notes())

	cfg, err = ParseFlags(testSpec, []string{"--brokers", "127.0.0.1:9092", "--tls-insecure-skip-verify"}, io.Discard)
	require.NoError(t, err)
	require.True(t, cfg.Security.TLS)
	require.Equal(t, " -X security.protocol=SSL -X enable.ssl.certificate.verification=false", cfg.Security.kcatFlags())
	require.Len(t, cfg.Security.notes(), 1)
	require.Contains(t, cfg.Security.notes()[0], "for tests only")
}

func TestRunWithSASL(t *testing.T) {
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mech, func(t *testing.T) {
			addr := startSecured(t, kfake.EnableSASL(), kfake.Superuser(mech, "alice", "right horse"))
			flags := []string{"--brokers", addr, "--sasl-mechanism", mech, "--sasl-user", "alice"}

			t.Setenv(PasswordEnv, "right horse")
			code, out, errOut, read := runUntilRecords(t, flags...)
			require.Equal(t, ExitOK, code, "stderr: %s", errOut)
			require.Positive(t, read, out)
			require.Regexp(t, `(?m)^batch .*: [1-9]\d* records`, out)

			// kfake closes the connection on a wrong password.
			t.Setenv(PasswordEnv, "wrong horse")
			code, out, errOut, read = runUntilRecords(t, flags...)
			require.Equal(t, ExitFailure, code, "stdout: %s", out)
			require.Zero(t, read)
			require.Regexp(t, `^goodbad: Kafka at `+addr+` closed the connection while the job authenticated as SASL `+mech+` user "alice" \(EOF\); check --sasl-user, --sasl-mechanism and the password in SLUICE_SASL_PASSWORD, and pass --tls if its listener uses TLS\n$`, errOut)
		})
	}
	t.Run("wrong password answered as Kafka does", func(t *testing.T) {
		// Kafka answers a wrong password with SASL_AUTHENTICATION_FAILED
		// and a message before it closes the connection.
		addr, c := startSecuredCluster(t, kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "alice", "pw"))
		c.ControlKey(int16(kmsg.SASLAuthenticate), func(req kmsg.Request) (kmsg.Response, error, bool) {
			c.KeepControl()
			resp := req.(*kmsg.SASLAuthenticateRequest).ResponseKind().(*kmsg.SASLAuthenticateResponse)
			resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
			msg := "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256"
			resp.ErrorMessage = &msg
			return resp, nil, true
		})
		t.Setenv(PasswordEnv, "wrong")
		code, _, errOut, _ := runUntilRecords(t, "--brokers", addr, "--sasl-mechanism", "scram-sha-256", "--sasl-user", "alice")
		require.Equal(t, ExitFailure, code)
		require.Regexp(t, `^goodbad: Kafka at `+addr+` refused SASL SCRAM-SHA-256 user "alice" \(.*invalid credentials.*\); check --sasl-user, --sasl-mechanism and the password in SLUICE_SASL_PASSWORD\n$`, errOut)
	})
	t.Run("no credentials", func(t *testing.T) {
		addr := startSecured(t, kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "alice", "pw"))
		code, _, errOut, _ := runUntilRecords(t, "--brokers", addr)
		require.Equal(t, ExitFailure, code)
		require.Regexp(t, `^goodbad: Kafka at `+addr+` closed the connection \(.*\); if its listener requires TLS or SASL, pass --tls \(and --tls-ca FILE\) or --sasl-mechanism and --sasl-user with the password in SLUICE_SASL_PASSWORD\n$`, errOut)
	})
}

func TestRunWithTLS(t *testing.T) {
	pki := newTestPKI(t)
	serverTLS := &tls.Config{Certificates: []tls.Certificate{pki.server}, MinVersion: tls.VersionTLS12}
	t.Run("server certificate", func(t *testing.T) {
		addr := startSecured(t, kfake.TLS(serverTLS))
		code, out, errOut, read := runUntilRecords(t, "--brokers", addr, "--tls-ca", pki.caFile)
		require.Equal(t, ExitOK, code, "stderr: %s", errOut)
		require.Positive(t, read, out)

		code, _, errOut, _ = runUntilRecords(t, "--brokers", addr, "--tls-ca", pki.otherCA)
		require.Equal(t, ExitFailure, code)
		require.Regexp(t, `^goodbad: the certificate of Kafka at `+addr+` is signed by an authority this machine does not trust \(.*\); pass the CA's certificate with --tls-ca FILE\n$`, errOut)

		// UNSAFE, for tests only: any certificate is accepted.
		code, _, errOut, read = runUntilRecords(t, "--brokers", addr, "--tls-insecure-skip-verify")
		require.Equal(t, ExitOK, code, "stderr: %s", errOut)
		require.Positive(t, read)
	})
	t.Run("a TLS client on a plain listener", func(t *testing.T) {
		addr := startSecured(t)
		code, _, errOut, _ := runUntilRecords(t, "--brokers", addr, "--tls-ca", pki.caFile)
		require.Equal(t, ExitFailure, code)
		require.Regexp(t, `^goodbad: Kafka at `+addr+` did not complete a TLS handshake \(.*\); check that --brokers names the brokers' TLS listener, or drop --tls and the --tls-\* flags\n$`, errOut)
	})
	t.Run("client certificate and SASL", func(t *testing.T) {
		mtls := serverTLS.Clone()
		mtls.ClientAuth = tls.RequireAndVerifyClientCert
		mtls.ClientCAs = pki.pool
		addr := startSecured(t, kfake.TLS(mtls), kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "alice", "pw"))
		t.Setenv(PasswordEnv, "pw")
		sasl := []string{"--sasl-mechanism", "scram-sha-512", "--sasl-user", "alice"}
		code, out, errOut, read := runUntilRecords(t, append([]string{"--brokers", addr, "--tls-ca", pki.caFile,
			"--tls-cert", pki.clientCert, "--tls-key", pki.clientKey, "--sink", "kafka:results"}, sasl...)...)
		require.Equal(t, ExitOK, code, "stderr: %s", errOut)
		require.Positive(t, read, out)
		require.Positive(t, securedRecords(t, addr, pki, "results"), "the kafka sink wrote its results over TLS and SASL")

		code, _, errOut, _ = runUntilRecords(t, append([]string{"--brokers", addr, "--tls-ca", pki.caFile}, sasl...)...)
		require.Equal(t, ExitFailure, code)
		require.Regexp(t, `^goodbad: Kafka at `+addr+` ended the TLS handshake \(remote error: tls: certificate required\); if its listener requires a client certificate, pass --tls-cert FILE --tls-key FILE\n$`, errOut)
	})
}

// securedRecords counts the committed records of topic on the mTLS and
// SASL cluster at addr.
func securedRecords(t *testing.T, addr string, pki *testPKI, topic string) int {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(pki.clientCert, pki.clientKey)
	require.NoError(t, err)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.DialTLSConfig(&tls.Config{RootCAs: pki.pool, Certificates: []tls.Certificate{cert}}),
		kgo.SASL(scram.Auth{User: "alice", Pass: "pw"}.AsSha512Mechanism()))
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	n := 0
	for n == 0 {
		fs := cl.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "no committed record in %s", topic)
		n += fs.NumRecords()
	}
	return n
}

// TestKcatOnSecuredCluster runs the kcat command the banner suggests,
// against a cluster that requires a client certificate: kcat (librdkafka,
// an independent client) produces with it, and the job reads every record
// kcat wrote exactly once. kfake's SASL cannot be tried with kcat:
// kfake serves SaslHandshake v1 only, and librdkafka asks for v0 before it
// authenticates ("SASL Handshake not supported by broker"); the flags
// kcatFlags prints for SASL are librdkafka's documented ones.
func TestKcatOnSecuredCluster(t *testing.T) {
	if _, err := exec.LookPath("kcat"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("kcat is not installed; CI needs it (Debian: apt-get install kcat)")
		}
		t.Skip("kcat is not installed, so the secured kcat check cannot run; install it (Debian: apt-get install kcat)")
	}
	pki := newTestPKI(t)
	mtls := &tls.Config{Certificates: []tls.Certificate{pki.server}, MinVersion: tls.VersionTLS12,
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pki.pool}
	addr := startSecured(t, kfake.TLS(mtls))
	flags := []string{"--brokers", addr, "--tls-ca", pki.caFile, "--tls-cert", pki.clientCert, "--tls-key", pki.clientKey}

	// The banner of a generating job names the kcat command.
	code, out, errOut, _ := runUntilRecords(t, flags...)
	require.Equal(t, ExitOK, code, "stderr: %s", errOut)
	hint := regexp.MustCompile(`(?m)add your own with: (kcat .*)$`).FindStringSubmatch(out)
	require.NotNil(t, hint, out)
	require.Contains(t, hint[1], "-X security.protocol=SSL -X ssl.ca.location="+pki.caFile)

	const n = 200
	var in strings.Builder
	for i := range n {
		fmt.Fprintf(&in, "kcat-%d\n", i)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	kc := exec.CommandContext(ctx, "sh", "-c", hint[1])
	kc.Stdin = strings.NewReader(in.String())
	kout, err := kc.CombinedOutput()
	require.NoError(t, err, "%s: %s", hint[1], kout)

	// The job resumes at the group's offsets and reads kcat's records.
	jctx, stop := context.WithCancel(t.Context())
	defer stop()
	seen := map[string]int{}
	c := &counting{onBatch: func(b dstream.Batch[string]) error {
		for v := range b.All() {
			if strings.HasPrefix(v, "kcat-") {
				seen[v]++
			}
		}
		if len(seen) == n {
			stop()
		}
		return nil
	}}
	code, out, errOut = run(t, jctx, c, append([]string{"--checkpoint", "", "--http", "", "--batch", "100ms", "--generate", "0", "--duration", "20s"}, flags...)...)
	require.Equal(t, ExitOK, code, "stderr: %s", errOut)
	require.Len(t, seen, n, out)
	for v, k := range seen {
		require.Equal(t, 1, k, "%s read once", v)
	}
}
