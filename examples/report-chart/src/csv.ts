/** A two-column CSV (label,value) with a header row; values must be numbers. */
export interface Row {
  label: string;
  value: number;
}

export function parseTwoColumns(text: string, file: string): { header: [string, string]; rows: Row[] } {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== '');
  const [head, ...body] = lines;
  if (!head) throw new Error(`${file} is empty; it needs a header row such as "month,amount".`);
  const [labelName = 'label', valueName = 'value'] = head.split(',').map((s) => s.trim());
  const rows = body.map((line, i) => {
    const [label = '', raw = ''] = line.split(',').map((s) => s.trim());
    const value = Number(raw);
    if (raw === '' || !Number.isFinite(value)) throw new Error(`${file}:${i + 2}: "${raw}" is not a number.`);
    return { label, value };
  });
  return { header: [labelName, valueName], rows };
}
