package exampleutil

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// PasswordEnv is the environment variable that holds the SASL password of
// --sasl-user. It is never a flag, so that it shows in no process list.
const PasswordEnv = "SLUICE_SASL_PASSWORD"

// Security is how the example's Kafka clients reach a secured cluster, as
// the --tls and --sasl flags ask: TLS (with the system's roots, a CA file,
// a client certificate) and SASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512).
// Every client of the job uses it: the source, the generator, the check of
// the cluster and the kafka sink.
type Security struct {
	TLS                bool   // --tls, or implied by another --tls-* flag
	CAFile             string // --tls-ca
	CertFile, KeyFile  string // --tls-cert, --tls-key
	InsecureSkipVerify bool   // --tls-insecure-skip-verify
	Mechanism          string // --sasl-mechanism, lower case; empty: no SASL
	User               string // --sasl-user

	opts []kgo.Opt
}

// Enabled reports whether any --tls or --sasl flag was given.
func (s Security) Enabled() bool { return s.TLS || s.Mechanism != "" }

// ClientOpts returns the kgo options that dial with TLS and authenticate
// with SASL, for every Kafka client of the job; nil when neither is asked
// for.
func (s Security) ClientOpts() []kgo.Opt { return s.opts }

// securityFlags registers how the job's clients reach a secured cluster.
func (p *parser) securityFlags() {
	fs, s := p.fs, &p.cfg.Security
	fs.BoolVar(&s.TLS, "tls", false, "connect to --brokers over TLS, trusting the system's root certificates (or --tls-ca)")
	fs.StringVar(&s.CAFile, "tls-ca", "", "PEM `file` of the CA certificates that sign the brokers' certificates; implies --tls")
	fs.StringVar(&s.CertFile, "tls-cert", "", "PEM `file` of the client certificate, for brokers that require one; needs --tls-key; implies --tls")
	fs.StringVar(&s.KeyFile, "tls-key", "", "PEM `file` of the client certificate's private key; needs --tls-cert")
	fs.BoolVar(&s.InsecureSkipVerify, "tls-insecure-skip-verify", false, "UNSAFE: accept any broker certificate, so anyone on the network can read and change the traffic; for tests only")
	fs.StringVar(&s.Mechanism, "sasl-mechanism", "", "SASL `mechanism` to authenticate with: plain, scram-sha-256 or scram-sha-512; needs --sasl-user")
	fs.StringVar(&s.User, "sasl-user", "", "SASL `user`; the password comes from the environment variable "+PasswordEnv)
}

func (p *parser) checkSecurity() error {
	s := &p.cfg.Security
	if p.cfg.Embedded() {
		for _, f := range []string{"tls", "tls-ca", "tls-cert", "tls-key", "tls-insecure-skip-verify", "sasl-mechanism", "sasl-user"} {
			if p.set[f] {
				return usagef("--%s secures the connection to --brokers, and without --brokers the example starts its own plain broker; pass --brokers or drop --%s.", f, f)
			}
		}
		return nil
	}
	tlsOpt, err := s.tlsConfig()
	if err != nil {
		return err
	}
	mech, err := s.mechanism()
	if err != nil {
		return err
	}
	if tlsOpt != nil {
		s.TLS = true
		s.opts = append(s.opts, kgo.DialTLSConfig(tlsOpt))
	}
	if mech != nil {
		s.opts = append(s.opts, kgo.SASL(mech))
	}
	return nil
}

// tlsConfig returns the TLS config the flags ask for, or nil for none.
func (s *Security) tlsConfig() (*tls.Config, error) {
	switch {
	case s.CertFile != "" && s.KeyFile == "":
		return nil, usagef("--tls-cert %s needs the certificate's private key; pass it with --tls-key FILE.", s.CertFile)
	case s.KeyFile != "" && s.CertFile == "":
		return nil, usagef("--tls-key %s needs the certificate it belongs to; pass it with --tls-cert FILE.", s.KeyFile)
	case s.InsecureSkipVerify && s.CAFile != "":
		return nil, usagef("--tls-insecure-skip-verify turns off the check that --tls-ca %s is for; drop one of them.", s.CAFile)
	}
	if !s.TLS && s.CAFile == "" && s.CertFile == "" && !s.InsecureSkipVerify {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: s.InsecureSkipVerify}
	if s.CAFile != "" {
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			return nil, usagef("--tls-ca %s cannot be read (%v); name a PEM file of CA certificates.", s.CAFile, pathErr(err))
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, usagef("--tls-ca %s holds no PEM certificate; name a file with -----BEGIN CERTIFICATE----- blocks.", s.CAFile)
		}
	}
	if s.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
		if err != nil {
			return nil, usagef("--tls-cert %s and --tls-key %s are not a PEM certificate and its private key (%v); pass the pair the CA issued.", s.CertFile, s.KeyFile, pathErr(err))
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// mechanism returns the SASL mechanism the flags ask for, or nil for none.
func (s *Security) mechanism() (sasl.Mechanism, error) {
	s.Mechanism = strings.ToLower(s.Mechanism)
	if s.Mechanism == "" {
		if s.User != "" {
			return nil, usagef("--sasl-user %s needs a mechanism; pass --sasl-mechanism plain, scram-sha-256 or scram-sha-512.", s.User)
		}
		return nil, nil
	}
	if s.User == "" {
		return nil, usagef("--sasl-mechanism %s needs a user; pass --sasl-user NAME and the password in %s.", s.Mechanism, PasswordEnv)
	}
	pass, ok := os.LookupEnv(PasswordEnv)
	if !ok || pass == "" {
		return nil, usagef("--sasl-user %s needs a password, and %s is not set; set it in the environment (read -rs %s; export %s) and run again.", s.User, PasswordEnv, PasswordEnv, PasswordEnv)
	}
	switch s.Mechanism {
	case "plain":
		return plain.Auth{User: s.User, Pass: pass}.AsMechanism(), nil
	case "scram-sha-256":
		return scram.Auth{User: s.User, Pass: pass}.AsSha256Mechanism(), nil
	case "scram-sha-512":
		return scram.Auth{User: s.User, Pass: pass}.AsSha512Mechanism(), nil
	}
	return nil, usagef("--sasl-mechanism %q is not a mechanism; pass plain, scram-sha-256 or scram-sha-512.", s.Mechanism)
}

// kcatFlags returns the kcat (librdkafka) options that reach the cluster
// as the job does, each preceded by a space; the password stays in the
// environment variable.
func (s Security) kcatFlags() string {
	var b strings.Builder
	x := func(k, v string) { fmt.Fprintf(&b, " -X %s=%s", k, v) }
	switch {
	case s.TLS && s.Mechanism != "":
		x("security.protocol", "SASL_SSL")
	case s.TLS:
		x("security.protocol", "SSL")
	case s.Mechanism != "":
		x("security.protocol", "SASL_PLAINTEXT")
	default:
		return ""
	}
	if s.CAFile != "" {
		x("ssl.ca.location", shellQuote(s.CAFile))
	}
	if s.CertFile != "" {
		x("ssl.certificate.location", shellQuote(s.CertFile))
		x("ssl.key.location", shellQuote(s.KeyFile))
	}
	if s.InsecureSkipVerify {
		x("enable.ssl.certificate.verification", "false")
	}
	if s.Mechanism != "" {
		x("sasl.mechanisms", strings.ToUpper(s.Mechanism))
		x("sasl.username", shellQuote(s.User))
		x("sasl.password", `"$`+PasswordEnv+`"`)
	}
	return b.String()
}

// shellQuote quotes v for a POSIX shell when it holds more than letters,
// digits and -_./:@.
func shellQuote(v string) string {
	if v != "" && strings.Trim(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:@") == "" {
		return v
	}
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}

// notes are the banner lines that warn about an unsafe setting.
func (s Security) notes() []string {
	var n []string
	if s.InsecureSkipVerify {
		n = append(n, "--tls-insecure-skip-verify: the brokers' certificates are not checked, so anyone on the network can read and change the traffic; use it for tests only")
	}
	if s.Mechanism == "plain" && !s.TLS {
		n = append(n, "SASL PLAIN without --tls sends the password in clear text; add --tls (and --tls-ca) if the listener offers TLS")
	}
	return n
}

// pathErr drops the path from a file error, which the message names already.
func pathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// explainConnect tells why the cluster at --brokers refused the job, naming
// the flags (or the password variable) to fix; it returns nil when err is
// not about TLS or SASL.
func (s Security) explainConnect(brokers string, err error) error {
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var recordHeader tls.RecordHeaderError
	var op *net.OpError
	var ne net.Error
	creds := "check --sasl-user, --sasl-mechanism and the password in " + PasswordEnv
	switch {
	case errors.Is(err, kerr.SaslAuthenticationFailed):
		return fmt.Errorf("Kafka at %s refused SASL %s user %q (%v); %s", brokers, strings.ToUpper(s.Mechanism), s.User, err, creds)
	case errors.Is(err, kerr.UnsupportedSaslMechanism):
		return fmt.Errorf("Kafka at %s does not accept SASL %s (%v); pass the --sasl-mechanism its listener enables", brokers, strings.ToUpper(s.Mechanism), err)
	case errors.As(err, &unknownCA):
		return fmt.Errorf("the certificate of Kafka at %s is signed by an authority this machine does not trust (%v); pass the CA's certificate with --tls-ca FILE", brokers, err)
	case errors.As(err, &hostname):
		return fmt.Errorf("the certificate of Kafka at %s is not for that address (%v); name the brokers in --brokers as the certificate does", brokers, err)
	case errors.As(err, &recordHeader):
		return fmt.Errorf("Kafka at %s does not speak TLS on that port (%v); drop --tls and the --tls-* flags, or name the brokers' TLS listener in --brokers", brokers, err)
	case errors.As(err, &op) && op.Op == "remote error" && s.CertFile == "":
		return fmt.Errorf("Kafka at %s ended the TLS handshake (%v); if its listener requires a client certificate, pass --tls-cert FILE --tls-key FILE", brokers, err)
	case errors.As(err, &op) && op.Op == "remote error":
		return fmt.Errorf("Kafka at %s ended the TLS handshake (%v); check that --tls-cert %s is issued by a CA the brokers trust", brokers, err, s.CertFile)
	case s.TLS && errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("Kafka at %s did not complete a TLS handshake (%v); check that --brokers names the brokers' TLS listener, or drop --tls and the --tls-* flags", brokers, err)
	case errors.Is(err, io.EOF) && s.Mechanism != "":
		// Some brokers close the connection on bad credentials instead of
		// answering SASL_AUTHENTICATION_FAILED.
		return fmt.Errorf("Kafka at %s closed the connection while the job authenticated as SASL %s user %q (%v); %s, and pass --tls if its listener uses TLS",
			brokers, strings.ToUpper(s.Mechanism), s.User, err, creds)
	case errors.Is(err, io.EOF):
		return fmt.Errorf("Kafka at %s closed the connection (%v); if its listener requires TLS or SASL, pass --tls (and --tls-ca FILE) or --sasl-mechanism and --sasl-user with the password in %s", brokers, err, PasswordEnv)
	}
	return nil
}
