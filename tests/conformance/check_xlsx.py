"""Independent check of a tiaochu report workbook with openpyxl.

Usage: check_xlsx.py REPORT.xlsx EXPECTED.json

EXPECTED.json: {"sheets": [...], "unit_headers": [...], "summary": {"项目": value, ...},
"units": N, "cases": N}. Checks the sheet names and order, a frozen header row on every sheet,
the per-unit headers, that the 合计 row of 分单位 is the column sum of the unit rows for every
count column, the summary values, and the number of unit and case rows. Prints OK or the first
failure (exit status 1).
"""
import json
import sys

import openpyxl


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def main():
    path, expected_path = sys.argv[1], sys.argv[2]
    with open(expected_path, encoding="utf-8") as f:
        expected = json.load(f)
    wb = openpyxl.load_workbook(path)
    if wb.sheetnames != expected["sheets"]:
        fail(f"sheets {wb.sheetnames} != {expected['sheets']}")
    for ws in wb.worksheets:
        if ws.freeze_panes != "A2":
            fail(f"sheet {ws.title}: header row not frozen ({ws.freeze_panes})")
        if not ws.cell(row=1, column=1).value:
            fail(f"sheet {ws.title}: no header")
        width = ws.column_dimensions["A"].width
        if width is None or width < 10:
            fail(f"sheet {ws.title}: column A width {width}")

    units = wb["分单位"]
    headers = [c.value for c in units[1]]
    if headers[: len(expected["unit_headers"])] != expected["unit_headers"]:
        fail(f"unit headers {headers}")
    rows = [list(r) for r in units.iter_rows(min_row=2, values_only=True)]
    if not rows or rows[-1][0] != "合计":
        fail("no 合计 row at the end of 分单位")
    body, total = rows[:-1], rows[-1]
    if len(body) != expected["units"]:
        fail(f"{len(body)} unit rows, expected {expected['units']}")
    count_columns = len(expected["unit_headers"]) - 1
    for col in range(1, count_columns + 1):
        s = sum(r[col] or 0 for r in body)
        if total[col] != s:
            fail(f"合计 of {headers[col]}: {total[col]} != sum {s}")

    summary = {}
    for name, value, *_ in wb["汇总"].iter_rows(min_row=2, values_only=True):
        summary[name] = value
    for name, value in expected["summary"].items():
        got = summary.get(name)
        if isinstance(value, float):
            ok = got is not None and abs(got - value) < 1e-9
        else:
            ok = got == value
        if not ok:
            fail(f"汇总 {name}: {got!r} != {value!r}")
    # 汇总 counts agree with the 合计 row.
    for col in range(1, count_columns + 1):
        if summary.get(headers[col]) != total[col]:
            fail(f"汇总 {headers[col]} {summary.get(headers[col])} != 合计 {total[col]}")

    cases = wb["案件"].max_row - 1
    if cases != expected["cases"]:
        fail(f"{cases} case rows, expected {expected['cases']}")
    print("OK")


if __name__ == "__main__":
    main()
