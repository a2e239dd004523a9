package main

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
)

// Chart geometry, in pixels. Text is drawn at textScale, so a character is
// 10×14 and advances 12.
const (
	chartWidth  = 960
	chartMargin = 16
	rowHeight   = 34
	barHeight   = 22
	textScale   = 2
	titleHeight = glyphH*textScale + 2*chartMargin
)

var (
	colBackground = color.RGBA{0xff, 0xff, 0xff, 0xff}
	colText       = color.RGBA{0x20, 0x20, 0x20, 0xff}
	colAxis       = color.RGBA{0x80, 0x80, 0x80, 0xff}
	colError      = color.RGBA{0xc0, 0x20, 0x20, 0xff}
	peerColors    = map[string]color.RGBA{
		peerFlightline: {0x1f, 0x77, 0xb4, 0xff},
		peerRaw:        {0x99, 0x99, 0x99, 0xff},
		peerTCP:        {0xff, 0x7f, 0x0e, 0xff},
		peerQUIC:       {0x2c, 0xa0, 0x2c, 0xff},
	}
)

// drawChart writes a horizontal bar chart of each result's goodput as PNG:
// one row per result, label on the left, bar length proportional to MB/s
// (the longest bar spans the plot area), value at the bar's end.
func drawChart(w io.Writer, rep *Report) error {
	img := renderChart(rep)
	return png.Encode(w, img)
}

// chartLayout is where renderChart puts the bars; tests measure bars with it.
type chartLayout struct {
	barX0, barMaxW int // bar area: x from barX0, at most barMaxW long
	firstRowY      int // top of the first row
}

func layoutFor(rep *Report) chartLayout {
	labelW := 0
	for _, r := range rep.Results {
		labelW = max(labelW, textWidth(r.Label(), textScale))
	}
	valueW := textWidth("00000.0 MB/S", textScale)
	x0 := chartMargin + labelW + chartMargin
	return chartLayout{
		barX0:     x0,
		barMaxW:   max(chartWidth-chartMargin-valueW-chartMargin-x0, 10),
		firstRowY: titleHeight,
	}
}

func renderChart(rep *Report) *image.RGBA {
	l := layoutFor(rep)
	height := titleHeight + len(rep.Results)*rowHeight + chartMargin
	img := image.NewRGBA(image.Rect(0, 0, chartWidth, height))
	fill(img, img.Bounds(), colBackground)
	drawText(img, chartMargin, chartMargin,
		fmt.Sprintf("loopback goodput, %d MiB each, MB/s (higher is better)", rep.SizeMiB), colText, textScale)

	top := 0.0
	for _, r := range rep.Results {
		top = max(top, r.MBps)
	}
	textDY := (rowHeight - glyphH*textScale) / 2
	for i, r := range rep.Results {
		y := l.firstRowY + i*rowHeight
		drawText(img, chartMargin, y+textDY, r.Label(), colText, textScale)
		barW := 0
		if top > 0 {
			barW = int(float64(l.barMaxW) * r.MBps / top)
		}
		by := y + (rowHeight-barHeight)/2
		c, ok := peerColors[r.Peer]
		if !ok {
			c = colAxis
		}
		fill(img, image.Rect(l.barX0, by, l.barX0+barW, by+barHeight), c)
		value := fmt.Sprintf("%.1f MB/s", r.MBps)
		vc := colText
		if r.Error != "" {
			value, vc = "error", colError
		}
		drawText(img, l.barX0+barW+chartMargin/2, y+textDY, value, vc, textScale)
	}
	// Axis: a vertical line where every bar starts.
	fill(img, image.Rect(l.barX0-1, l.firstRowY, l.barX0, l.firstRowY+len(rep.Results)*rowHeight), colAxis)
	return img
}
