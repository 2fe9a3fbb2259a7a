package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/sluicehq/sluice/examples/internal/exampleutil"
)

// entry is a generated access-log line, in nginx's JSON log field names.
type entry struct {
	TimeLocal     string  `json:"time_local"`
	RemoteAddr    string  `json:"remote_addr"`
	ClientRealIP  string  `json:"client_real_ip,omitempty"`
	Request       string  `json:"request"`
	Status        int     `json:"status"`
	BodyBytesSent int     `json:"body_bytes_sent"`
	Referer       string  `json:"http_referer"`
	UserAgent     string  `json:"http_user_agent"`
	RequestTime   float64 `json:"request_time"`
}

var (
	paths = []string{
		"/", "/index.html", "/api/v1/items", "/api/v1/items/42", "/api/v1/cart", "/api/v1/login",
		"/static/app.js", "/static/app.css", "/images/logo.png", "/search?q=kafka", "/docs/streaming", "/favicon.ico",
	}
	methods = []string{"GET", "GET", "GET", "GET", "POST", "PUT"}
	agents  = []string{
		"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
		"curl/8.5.0",
		"okhttp/4.12.0",
	}
	statuses = []int{200, 200, 200, 200, 200, 200, 304, 301, 404, 500}
)

// clients is the number of distinct client addresses the generator uses;
// their traffic follows a Zipf law, so a few are busy and most are not.
const clients = 60

// clientIP returns the i-th client address, from the documentation ranges.
func clientIP(i uint64) string {
	nets := [...]string{"203.0.113", "198.51.100", "192.0.2"}
	return fmt.Sprintf("%s.%d", nets[i%3], 10+i/3)
}

// newGenerator returns the access-log generator: nginx-style JSON lines;
// one in eight is a load balancer health check without client_real_ip, and
// one in two hundred is cut short as a broken shipper would leave it.
func newGenerator() exampleutil.Generator {
	var zipf *rand.Zipf
	return exampleutil.Generator{
		Next: func(r *rand.Rand) (key, value []byte) {
			if zipf == nil {
				zipf = rand.NewZipf(r, 1.2, 1, clients-1)
			}
			now := time.Now()
			e := entry{
				TimeLocal:     now.Format("02/Jan/2006:15:04:05 -0700"),
				RemoteAddr:    fmt.Sprintf("10.0.%d.%d", r.IntN(4), 2+r.IntN(8)),
				Status:        statuses[r.IntN(len(statuses))],
				BodyBytesSent: 200 + r.IntN(40000),
				Referer:       "-",
				RequestTime:   float64(1+r.IntN(400)) / 1000,
			}
			if r.IntN(8) == 0 {
				e.Request, e.UserAgent, e.Status, e.BodyBytesSent = "GET /healthz HTTP/1.1", "kube-probe/1.29", 200, 2
			} else {
				e.ClientRealIP = clientIP(zipf.Uint64())
				e.Request = methods[r.IntN(len(methods))] + " " + paths[r.IntN(len(paths))] + " HTTP/1.1"
				e.UserAgent = agents[r.IntN(len(agents))]
				if r.IntN(3) == 0 {
					e.Referer = "https://example.com/"
				}
			}
			line, _ := json.Marshal(e)
			if r.IntN(200) == 0 {
				line = line[:len(line)/2]
			}
			return nil, line
		},
	}
}
