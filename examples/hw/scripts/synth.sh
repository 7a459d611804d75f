#!/usr/bin/env bash
# Synthesis estimates of the ternary matrix-vector unit (rtl/tmv_unit.sv) for M = 16 and 64
# lanes: Yosys generic and synth_xilinx (xc7) cell counts of the unit alone, and nextpnr-ice40
# HX8K fmax of the unit inside rtl/tmv_wrap.sv. Prints a Markdown table and, with --update,
# writes it between the synth markers of examples/hw/README.md.
#
#   bash examples/hw/scripts/synth.sh [--update]       (needs yosys, nextpnr-ice40, python3)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rtl=$here/rtl
work=${WORK:-$(mktemp -d)}
mkdir -p "$work"
lanes_list=${LANES_LIST:-"16 64"}
seed=${SEED:-1}

for m in $lanes_list; do
  yosys -q -l "$work/gen$m.log" -p "read_verilog -sv $rtl/tmv_unit.sv; chparam -set LANES $m tmv_unit; \
    synth -top tmv_unit; tee -q -o $work/gen$m.json stat -json" >/dev/null 2>&1
  yosys -q -l "$work/xc7$m.log" -p "read_verilog -sv $rtl/tmv_unit.sv; chparam -set LANES $m tmv_unit; \
    synth_xilinx -top tmv_unit -family xc7 -noiopad; tee -q -o $work/xc7$m.json stat -json" >/dev/null 2>&1
  yosys -q -l "$work/ice$m.log" -p "read_verilog -sv $rtl/tmv_unit.sv $rtl/tmv_wrap.sv; \
    chparam -set LANES $m tmv_wrap; synth_ice40 -top tmv_wrap -json $work/ice$m.json" >/dev/null 2>&1
  nextpnr-ice40 --hx8k --package ct256 --json "$work/ice$m.json" --pcf-allow-unconstrained --freq 12 \
    --seed "$seed" --timing-allow-fail --report "$work/pnr$m.json" -q -l "$work/pnr$m.log" >/dev/null 2>&1
done

python3 - "$work" "$lanes_list" "$here/README.md" "${1:-}" <<'PY'
import json, sys, re
work, lanes, readme, mode = sys.argv[1], sys.argv[2].split(), sys.argv[3], sys.argv[4]
def cells(path):
    d = json.load(open(path))
    return d["modules"][next(iter(d["modules"]))]["cells"] if "modules" in d else d["design"]["num_cells_by_type"]
def stat(path):
    d = json.load(open(path))
    m = d["design"] if "design" in d else d["modules"][next(iter(d["modules"]))]
    return m["num_cells"], m["num_cells_by_type"]
rows = []
for m in lanes:
    n, gen = stat(f"{work}/gen{m}.json")
    gff = sum(v for k, v in gen.items() if "DFF" in k)
    _, x = stat(f"{work}/xc7{m}.json")
    lut = sum(v for k, v in x.items() if re.fullmatch(r"LUT\d", k))
    inv = x.get("INV", 0)
    ff = sum(v for k, v in x.items() if k.startswith("FD"))
    carry = x.get("CARRY4", 0)
    bram = sum(v for k, v in x.items() if k.startswith("RAMB"))
    dsp = sum(v for k, v in x.items() if k.startswith("DSP"))
    pnr = json.load(open(f"{work}/pnr{m}.json"))
    fmax = max(v["achieved"] for v in pnr["fmax"].values())
    lc = pnr["utilization"]["ICESTORM_LC"]
    rows.append(f"| {m} | {n} cells, {gff} FF | {lut} LUT (+{inv} INV), {ff} FF, {carry} CARRY4, {bram} BRAM, {dsp} DSP "
                f"| {lut / int(m):.1f} | {fmax:.1f} MHz ({lc['used']}/{lc['available']} LC incl. wrapper) |")
table = "\n".join([
    "| lanes M | Yosys generic [synthesised] | xc7 `synth_xilinx -noiopad` [synthesised] | xc7 LUT / lane | iCE40 HX8K fmax, nextpnr [placed & routed] |",
    "|---|---|---|---|---|", *rows])
print(table)
if mode == "--update":
    s = open(readme).read()
    s = re.sub(r"(<!-- synth:begin -->\n).*?(\n<!-- synth:end -->)", lambda mm: mm.group(1) + table + mm.group(2), s, flags=re.S)
    open(readme, "w").write(s)
PY
