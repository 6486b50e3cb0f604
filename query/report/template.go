package report

import "html/template"

// pageTemplate is the whole report. It must never reference anything outside the file:
// no <script>, <link>, external <img>, font or url(); TestReportSelfContained checks.
var pageTemplate = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="{{.Generator}}">
<title>{{.Title}}</title>
<style>
:root { --fg:#1d1d1f; --muted:#6e6e73; --line:#d8d8dc; --bg:#ffffff; --band:#f5f5f7; --accent:#1f77b4; --bad:#d62728; --warn:#e08600; --good:#2ca02c; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "Liberation Sans", Arial, sans-serif; color: var(--fg); background: var(--bg); }
header { padding: 18px 28px 12px; border-bottom: 1px solid var(--line); background: var(--band); }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 0; color: var(--muted); font-size: 12px; }
nav { padding: 8px 28px; border-bottom: 1px solid var(--line); font-size: 13px; }
nav a { margin-right: 14px; }
main { padding: 8px 28px 40px; max-width: 1400px; }
h2 { font-size: 18px; margin: 28px 0 10px; padding-bottom: 4px; border-bottom: 2px solid var(--accent); }
h3 { font-size: 15px; margin: 26px 0 6px; }
h3 .op { color: var(--muted); font-weight: normal; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
table { border-collapse: collapse; margin: 6px 0 14px; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: var(--band); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.num { white-space: nowrap; }
table.prov th { width: 12em; white-space: nowrap; }
table.prov td { font-family: ui-monospace, "DejaVu Sans Mono", "Liberation Mono", monospace; font-size: 12.5px; min-width: 22em; max-width: 44em; overflow-wrap: anywhere; }
.configs { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 0 22px; }
tr.differ td { background: #fff4e0; }
tr.first td { background: #fde8e8; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 9px; font-size: 12px; font-weight: 600; color: #fff; }
.pass { background: var(--good); } .fail { background: var(--bad); }
.state-complete { color: var(--good); font-weight: 600; } .state-recording { color: var(--accent); font-weight: 600; }
.state-interrupted { color: var(--warn); font-weight: 600; } .state-crashed { color: var(--bad); font-weight: 600; }
.st-equal, .st-ok { color: var(--good); } .st-failed, .st-shape_mismatch { color: var(--bad); font-weight: 600; }
.st-only_a, .st-only_b, .st-no_common_data { color: var(--muted); }
pre { background: var(--band); border: 1px solid var(--line); padding: 8px 12px; overflow: auto; max-height: 320px; font-size: 12px; }
figure { margin: 10px 0 18px; }
figure.scroll { overflow-x: auto; }
figcaption { color: var(--muted); font-size: 12px; margin-top: 2px; }
svg.chart { display: block; width: 100%; height: auto; border: 1px solid var(--line); }
svg.chart image { image-rendering: pixelated; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 6px 22px; align-items: start; }
.note { color: var(--warn); }
td.bad { color: var(--bad); font-weight: 600; }
.muted { color: var(--muted); }
footer { color: var(--muted); font-size: 12px; padding: 12px 28px; border-top: 1px solid var(--line); }
@media print { nav { display: none; } .charts { display: block; } }
</style>
</head>
<body>
<header>
<h1>{{.Title}}</h1>
<p>Generated {{.Generated}} by {{.Generator}} ({{.GoVersion}}). Self-contained: this file references nothing outside itself.</p>
</header>
<nav>
<a href="#provenance">Provenance</a>{{if .Diff}}<a href="#diff">Diff</a>{{end}}<a href="#layers">Layers</a>{{if .Sections}}<a href="#charts">Charts</a>{{end}}
</nav>
<main>
{{range .Notes}}<p class="note">{{.}}</p>{{end}}
<section id="provenance">
<h2>Provenance</h2>
<table class="prov">
{{$two := gt (len .Runs) 1}}{{if $two}}<tr><th></th>{{range .Runs}}<th>{{.}}</th>{{end}}</tr>{{end}}
{{range .Provenance}}{{$row := .}}<tr{{if and $two .Differ}} class="differ"{{end}}><th>{{.Key}}</th>{{range $i, $v := .Values}}<td{{with index $row.Class $i}} class="{{.}}"{{end}}>{{$v}}</td>{{end}}</tr>
{{end}}</table>
{{if $two}}<p class="muted">Rows in orange differ between the runs.</p>{{end}}
{{if .Configs}}<div class="configs">{{range .Configs}}<div><h3>Recorder configuration of {{.Run}}</h3>
<pre>{{.JSON}}</pre></div>
{{end}}</div>{{end}}
</section>
{{with .Diff}}
<section id="diff">
<h2>Diff</h2>
<p>{{if .Pass}}<span class="badge pass">PASS</span>{{else}}<span class="badge fail">FAIL</span>{{end}}
{{if .FirstDiverging}} First diverging layer: <strong>{{.FirstDiverging}}</strong>.{{else}} No layer diverges.{{end}}</p>
{{range .Summary}}<p>{{.}}</p>{{end}}
{{with .Chart}}<figure class="scroll">{{.SVG}}<figcaption>{{.Caption}}</figcaption></figure>{{end}}
<table>
<tr><th>layer</th><th>op</th><th>status</th><th class="num">SQNR dB</th><th class="num">cosine</th><th class="num">rel. L2</th><th class="num">max |a−b|</th><th class="num">outside tol.</th><th class="num">Δ mean</th><th class="num">Δ std</th><th class="num">hist W1</th><th class="num">first batch beyond tol.</th><th>reasons</th></tr>
{{range .Rows}}<tr{{if .First}} class="first"{{end}}><td>{{.Layer}}</td><td>{{.Op}}</td><td class="{{.StatusClass}}">{{.Status}}</td><td class="num">{{.SQNR}}</td><td class="num">{{.Cosine}}</td><td class="num">{{.RelL2}}</td><td class="num">{{.MaxAbs}}</td><td class="num">{{.Outside}}</td><td class="num">{{.DMean}}</td><td class="num">{{.DStd}}</td><td class="num">{{.W1}}</td><td class="num">{{.FirstBatch}}</td><td>{{.Reasons}}</td></tr>
{{end}}</table>
</section>
{{end}}
<section id="layers">
<h2>Layers</h2>
<table>
<tr><th class="num">#</th><th>layer</th><th>op</th><th>shape (per sample)</th><th>recorded</th><th class="num">stats batches</th><th class="num">tensor batches</th><th class="num">stored</th>{{if $two}}<th>in {{index .Runs 1}}</th>{{end}}</tr>
{{range .Layers}}<tr><td class="num">{{.Order}}</td><td><a href="#{{.Anchor}}">{{.Path}}</a></td><td>{{.Op}}</td><td>{{.Shape}}</td><td>{{.Recorded}}</td><td class="num">{{.StatsBatches}}</td><td class="num">{{.TensorBatches}}</td><td class="num">{{.Bytes}}</td>{{if $two}}<td>{{.InB}}</td>{{end}}</tr>
{{end}}</table>
</section>
{{if .Sections}}<section id="charts">
<h2>Charts per layer</h2>
{{range .Sections}}<h3 id="{{.Anchor}}">{{.Path}} <span class="op">{{.Op}} {{.Shape}}</span></h3>
{{range .Notes}}<p class="note">{{.}}</p>{{end}}
{{if .Summary}}<table class="summary">
<tr><th>run</th><th class="num">batches</th><th class="num">elements</th><th class="num">mean</th><th class="num">std</th><th class="num">min</th><th class="num">p01</th><th class="num">p50</th><th class="num">p99</th><th class="num">max</th><th class="num">zeros</th><th class="num">NaN</th><th class="num">Inf</th></tr>
{{range .Summary}}<tr><td>{{.Run}}</td><td class="num">{{.Batches}}</td><td class="num">{{.Count}}</td><td class="num">{{.Mean}}</td><td class="num">{{.Std}}</td><td class="num">{{.Min}}</td><td class="num">{{.P01}}</td><td class="num">{{.P50}}</td><td class="num">{{.P99}}</td><td class="num">{{.Max}}</td><td class="num">{{.Zeros}}</td><td class="num{{if .NonFinite}} bad{{end}}">{{.NaN}}</td><td class="num{{if .NonFinite}} bad{{end}}">{{.Inf}}</td></tr>
{{end}}</table>{{end}}
<div class="charts">
{{range .Charts}}<figure>{{.SVG}}<figcaption>{{.Caption}}</figcaption></figure>
{{end}}</div>
{{if .Hists}}<div class="charts">
{{range .Hists}}<figure>{{.SVG}}<figcaption>{{.Caption}}</figcaption></figure>
{{end}}</div>{{end}}
{{end}}</section>{{end}}
</main>
<footer>actrec — flight recorder for neural-network inference. Charts drawn with gonum.org/v1/plot.</footer>
</body>
</html>
`))
