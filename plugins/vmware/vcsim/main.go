// vcsim for tfo-agent tests: VMware's vCenter simulator (govmomi's simulator
// package, Debian's golang-github-vmware-govmomi-dev) serving the default VPX
// inventory over the vim25 SOAP API at /sdk, PerformanceManager included.
//
// Built by scripts/vcsim.sh (GOPATH=/usr/share/gocode GO111MODULE=off). Differences
// from govmomi's own vcsim command, which Debian does not ship:
//   - -l 127.0.0.1:0 picks a free port; the URL is printed as the first stdout
//     line, "VCSIM_URL=https://127.0.0.1:PORT/sdk", so a test waits for that line
//     instead of sleeping;
//   - -ca-out FILE generates a fresh CA and a server certificate for 127.0.0.1 and
//     localhost and writes the CA (PEM) to FILE, so clients verify TLS for real;
//   - -stdin-exit stops the simulator when its stdin closes (the test that started
//     it went away);
//   - -perf-data-out FILE writes the simulator's performance sample tables and
//     counter keys as JSON, so a test can check values against them.
package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/simulator/vpx"
)

func main() {
	listen := flag.String("l", "127.0.0.1:8989", "listen address (port 0: a free port)")
	useTLS := flag.Bool("tls", true, "serve https (false: plain http)")
	caOut := flag.String("ca-out", "", "generate a CA and a certificate for 127.0.0.1/localhost; write the CA PEM here")
	username := flag.String("username", "user", "login user name")
	password := flag.String("password", "pass", "login password")
	stdinExit := flag.Bool("stdin-exit", false, "exit when stdin reaches EOF")
	perfOut := flag.String("perf-data-out", "", "write the performance sample tables and counter keys as JSON here")
	flag.Parse()

	model := simulator.VPX()
	if err := model.Create(); err != nil {
		log.Fatalf("creating the VPX model: %v", err)
	}
	defer model.Remove()

	if *perfOut != "" {
		if err := writePerfData(*perfOut); err != nil {
			log.Fatalf("writing %s: %v", *perfOut, err)
		}
	}

	model.Service.Listen = &url.URL{Host: *listen, User: url.UserPassword(*username, *password)}
	if *useTLS {
		cfg := new(tls.Config)
		if *caOut != "" {
			cert, caPEM, err := generate()
			if err != nil {
				log.Fatalf("generating certificates: %v", err)
			}
			if err := os.WriteFile(*caOut, caPEM, 0o644); err != nil {
				log.Fatalf("writing %s: %v", *caOut, err)
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		model.Service.TLS = cfg
	}
	server := model.Service.NewServer()
	defer server.Close()

	u := *server.URL
	u.User = nil
	fmt.Printf("VCSIM_URL=%s\n", u.String())
	os.Stdout.Sync()

	done := make(chan os.Signal, 1)
	signal.Notify(done, syscall.SIGINT, syscall.SIGTERM)
	if *stdinExit {
		go func() {
			_, _ = io.Copy(io.Discard, bufio.NewReader(os.Stdin))
			done <- syscall.SIGTERM
		}()
	}
	<-done
}

// writePerfData dumps vpx.MetricData (entity type -> counter key -> samples) and
// the counter keys by "group.name.rollup".
func writePerfData(path string) error {
	counters := map[string]int32{}
	for _, c := range vpx.PerfCounter {
		name := fmt.Sprintf("%s.%s.%s", c.GroupInfo.GetElementDescription().Key,
			c.NameInfo.GetElementDescription().Key, c.RollupType)
		if _, seen := counters[name]; !seen {
			counters[name] = c.Key
		}
	}
	data := map[string]interface{}{"counters": counters, "samples": vpx.MetricData}
	b, err := json.Marshal(data)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// generate makes a CA and a server certificate for 127.0.0.1 and localhost signed
// by it; returns the server key pair and the CA in PEM.
func generate() (tls.Certificate, []byte, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "tfo-agent vcsim test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "vcsim"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	cert := tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: key}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	return cert, caPEM, nil
}
