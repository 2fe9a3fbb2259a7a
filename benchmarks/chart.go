package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"time"
)

// Chart geometry, in SVG user units.
const (
	chartWidth = 980
	labelRight = 330 // labels end here, right-aligned
	barLeft    = 340
	barRight   = 860
	rowHeight  = 22
	barHeight  = 14
)

// Bar colours: target met, target missed, no target.
const (
	colourMet    = "#2e8b57"
	colourMissed = "#c0392b"
	colourPlain  = "#4682b4"
)

// chartBar is one bar of a panel.
type chartBar struct {
	label  string
	value  float64 // in the panel's axis unit
	text   string  // printed after the bar
	colour string
	goal   float64 // a target marker at this value, or 0
}

// chartPanel is a titled set of horizontal bars on one axis from 0.
type chartPanel struct {
	title string
	bars  []chartBar
	unit  string    // axis unit, printed after tick values
	marks []float64 // vertical reference lines (parity, a limit)
}

// svg draws the chart: throughput ratios, latency against the batch
// interval, checkpoint cost and restore time against state size.
func (r *report) svg(w io.Writer) error {
	var panels []chartPanel

	tp := chartPanel{title: "Throughput: Sluice ÷ baseline (higher is better; ◆ target)", unit: "×", marks: []float64{1}}
	for _, res := range r.Results {
		if res.Ratio == nil || (res.Unit != unitRate && res.Unit != unitTimes) {
			continue
		}
		tp.bars = append(tp.bars, chartBar{label: res.Label, value: *res.Ratio, text: fmt.Sprintf("%.2f×", *res.Ratio),
			colour: colourOf(res), goal: res.goalRatio})
	}
	panels = append(panels, tp)

	lat := chartPanel{title: "Latency, producer timestamp → output, in batch intervals (lower is better; line: 2× target)", unit: "×", marks: []float64{2}}
	for _, res := range r.Results {
		if res.Workload == "latency" {
			lat.bars = append(lat.bars, chartBar{label: res.Label, value: *res.Ratio,
				text: fmt.Sprintf("%s (%.2f×)", fmtValue(res.Sluice, unitMS), *res.Ratio), colour: colourOf(res)})
		}
	}
	panels = append(panels, lat)

	ck := chartPanel{title: fmt.Sprintf("Checkpoint part of a batch by keys in state (%s keys changed per batch)", thousands(checkpointChanged)), unit: " ms"}
	rs := chartPanel{title: "Restore time by keys in state", unit: " ms"}
	for _, c := range r.Checkpoint {
		ck.bars = append(ck.bars, chartBar{label: thousands(c.Keys) + " keys", value: c.CheckpointMS, text: fmtValue(c.CheckpointMS, unitMS), colour: colourPlain})
		rs.bars = append(rs.bars, chartBar{label: thousands(c.Keys) + " keys", value: c.RestoreMS, text: fmtValue(c.RestoreMS, unitMS), colour: colourPlain})
	}
	// The largest state's bar carries the target's colour.
	for _, res := range r.Results {
		if res.Workload == "checkpoint" && res.Met != nil && len(ck.bars) > 0 {
			ck.bars[len(ck.bars)-1].colour = colourOf(res)
		}
	}
	panels = append(panels, ck, rs)

	var body bytes.Buffer
	y := 40
	for _, p := range panels {
		if len(p.bars) == 0 {
			continue
		}
		y = p.draw(&body, y) + 24
	}
	m := r.Machine
	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		chartWidth, y+20, chartWidth, y+20)
	fmt.Fprintf(w, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(w, `<text x="10" y="20" font-size="15" font-weight="bold">Sluice benchmarks, %s</text>`+"\n", esc(r.Generated.Format(time.DateOnly)))
	fmt.Fprintf(w, `<text x="10" y="%d" fill="#555">%s</text>`+"\n", y+8,
		esc(fmt.Sprintf("%d CPUs (%s), %s, load average %s → %s", m.NumCPU, m.CPUModel, m.GoVersion, m.LoadAvgStart, m.LoadAvgEnd)))
	if _, err := w.Write(body.Bytes()); err != nil {
		return err
	}
	_, err := io.WriteString(w, "</svg>\n")
	return err
}

// draw writes the panel from y down and returns where it ends.
func (p chartPanel) draw(w io.Writer, y int) int {
	fmt.Fprintf(w, `<text x="10" y="%d" font-size="13" font-weight="bold">%s</text>`+"\n", y, esc(p.title))
	y += 10
	axisMax := 0.0
	for _, b := range p.bars {
		axisMax = max(axisMax, b.value, b.goal)
	}
	for _, m := range p.marks {
		axisMax = max(axisMax, m)
	}
	step := niceStep(axisMax * 1.15)
	axisMax = math.Ceil(axisMax*1.15/step) * step
	x := func(v float64) float64 { return barLeft + (barRight-barLeft)*v/axisMax }
	height := len(p.bars) * rowHeight
	// Grid and ticks.
	for v := 0.0; v <= axisMax+step/2; v += step {
		fmt.Fprintf(w, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>`+"\n", x(v), y, x(v), y+height)
		fmt.Fprintf(w, `<text x="%.1f" y="%d" text-anchor="middle" fill="#777" font-size="10">%s</text>`+"\n", x(v), y+height+12, esc(tick(v, step)+p.unit))
	}
	for i, b := range p.bars {
		ry := y + i*rowHeight
		fmt.Fprintf(w, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", labelRight, ry+barHeight-2, esc(b.label))
		fmt.Fprintf(w, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", barLeft, ry+2, x(b.value)-barLeft, barHeight-2, b.colour)
		textX := x(b.value) + 4
		if b.goal > 0 && x(b.goal) >= x(b.value)-6 && x(b.goal) < x(b.value)+60 {
			textX = x(b.goal) + 10 // keep the text clear of the target marker
		}
		fmt.Fprintf(w, `<text x="%.1f" y="%d">%s</text>`+"\n", textX, ry+barHeight-2, esc(b.text))
		if b.goal > 0 {
			gx, gy := x(b.goal), float64(ry+barHeight/2+1)
			fmt.Fprintf(w, `<path d="M%.1f %.1f l5 5 l-5 5 l-5 -5 z" fill="black"/>`+"\n", gx, gy-5)
		}
	}
	for _, m := range p.marks {
		fmt.Fprintf(w, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="black" stroke-dasharray="4 3"/>`+"\n", x(m), y-2, x(m), y+height+2)
	}
	return y + height + 16
}

func colourOf(r result) string {
	switch {
	case r.Met == nil:
		return colourPlain
	case *r.Met:
		return colourMet
	}
	return colourMissed
}

// niceStep returns a tick step of 1, 2 or 5 times a power of ten that cuts
// [0, span] into 4 to 10 parts.
func niceStep(span float64) float64 {
	if span <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(span)))
	for _, m := range []float64{0.1, 0.2, 0.5, 1, 2, 5, 10} {
		if span/(m*p) <= 10 {
			return m * p
		}
	}
	return 10 * p
}

func tick(v, step float64) string {
	if step >= 1 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

func esc(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
