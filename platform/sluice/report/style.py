"""The report's inline style sheet."""

CSS = """
:root{--ink:#1f2933;--muted:#5f6b7a;--line:#d9dee5;--bg:#f6f7f9}*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:14px/1.45 system-ui,sans-serif}
header{background:#1f2933;color:#fff;padding:20px 32px}header h1{margin:0 0 4px;font-size:22px}
header p{margin:0;color:#cbd2d9}nav{padding:8px 32px;background:#fff;border-bottom:1px solid #ddd}
nav a{margin-right:16px;color:#3b6fb6;text-decoration:none}h2{font-size:17px;margin:4px 0 12px}
main{max-width:1180px;margin:0 auto;padding:8px 24px 32px}dt{color:var(--muted)}dd{margin:0}
section{background:#fff;border:1px solid var(--line);border-radius:8px;margin:16px 0;
padding:12px 20px}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:0}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:14px 0 4px}.card b{display:block;font-size:20px}
.card{border:1px solid var(--line);border-radius:6px;padding:8px 14px;min-width:130px}
.card span,.ci{color:var(--muted);font-size:12px}.ci{display:block;font-size:11px}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,460px),1fr));gap:20px}
.grid2>*{min-width:0}.scroll{overflow-x:auto;margin:6px 0}
.empty{color:var(--muted);font-style:italic}
table{border-collapse:collapse;width:100%;font-size:13px}table.narrow{width:auto;min-width:50%}
th,td{padding:5px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
thead th{background:var(--bg);vertical-align:bottom}th.num{text-align:right}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;
background:#e4e7eb}.badge.bad,.badge.block{background:#fde2e1;color:#c0392b}
.badge.warn{background:#fdf0d5;color:#b7791f}.badge.good,.badge.ok{background:#dcf2e4;color:#2f855a}
.badge.canary{background:#fdebd6;color:#9a5410}.badge.main{background:#dde7f5;color:#2b5590}
tr.block td,tr.fired td{background:#fff5f5}tr.warn td{background:#fffaf0}
svg.chart{width:100%;max-width:720px;height:auto;display:block;margin:4px 0}
svg .chart-title{font-weight:600;font-size:14px;fill:var(--ink)}svg .value{fill:var(--ink)}
svg .tick,svg .legend,svg .value,svg .axis-label{font-size:12px}svg text{fill:var(--muted)}
svg .grid{stroke:#eceff3}svg .axis{stroke:#9aa3ad}svg .frame{fill:var(--bg);stroke:var(--line)}
svg .reference{stroke:#9aa3ad;stroke-dasharray:5 4}svg .no-data{font-size:13px}
svg .series{fill:none;stroke-width:2.5}svg .whisker{stroke-width:2}
details summary{cursor:pointer;color:var(--muted);margin:8px 0}
footer{color:var(--muted);font-size:12px;text-align:center;padding:8px}
"""
