import type { Row } from './csv.js';

/** A bar chart as an SVG string: no libraries, nothing to install in the container. */
export function barChart(rows: Row[], title: string): string {
  const width = 640;
  const height = 360;
  const margin = { top: 48, right: 24, bottom: 48, left: 64 };
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const max = Math.max(1, ...rows.map((r) => r.value));
  const step = plotW / Math.max(1, rows.length);
  const bars = rows.map((r, i) => {
    const h = (Math.max(0, r.value) / max) * plotH;
    const x = margin.left + i * step + step * 0.15;
    const y = margin.top + plotH - h;
    return [
      `  <rect x="${fmt(x)}" y="${fmt(y)}" width="${fmt(step * 0.7)}" height="${fmt(h)}" fill="#3b82f6"><title>${esc(r.label)}: ${r.value}</title></rect>`,
      `  <text x="${fmt(x + step * 0.35)}" y="${fmt(y - 6)}" text-anchor="middle" font-size="12">${r.value}</text>`,
      `  <text x="${fmt(x + step * 0.35)}" y="${height - margin.bottom + 18}" text-anchor="middle" font-size="12">${esc(r.label)}</text>`,
    ].join('\n');
  });
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">`,
    `  <rect width="${width}" height="${height}" fill="white"/>`,
    `  <text x="${width / 2}" y="28" text-anchor="middle" font-size="18">${esc(title)}</text>`,
    `  <line x1="${margin.left}" y1="${margin.top + plotH}" x2="${width - margin.right}" y2="${margin.top + plotH}" stroke="#333"/>`,
    ...bars,
    '</svg>',
    '',
  ].join('\n');
}

function esc(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function fmt(n: number): string {
  return String(Math.round(n * 10) / 10);
}
