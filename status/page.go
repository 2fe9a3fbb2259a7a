package status

import (
	_ "embed"
	"net/http"
)

// pageHTML is the live status page. It holds its styles and scripts, so it
// needs nothing from the network: it polls /api/job, /api/batches,
// /api/lag and /api/tasks and draws its charts as SVG.
//
//go:embed page/index.html
var pageHTML []byte

func (h *Handler) routePage(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		if !noParams(w, r) {
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(pageHTML)
	})
}
