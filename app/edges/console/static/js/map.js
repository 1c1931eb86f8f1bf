// The map of the network: nodes drawn from their coordinates as SVG (no map tiles).

import { h } from "./page.js";

export const NODE_COLOURS = { dc: "#1a5fb4", store: "#26a269", "3pl": "#9141ac", supplier: "#c64600" };

// An SVG map of nodes from their coordinates (no tiles): marks = {node_id: "chosen" |
// "candidate" | "excluded"}; destination = {lat, lon, label}.
export function networkMap(nodes, { marks = {}, destination = null, label = "Map of the network", size = {} } = {}) {
  const points = nodes.filter((n) => n.address && n.address.lat != null);
  const lats = points.map((n) => n.address.lat).concat(destination ? [destination.lat] : []);
  const lons = points.map((n) => n.address.lon).concat(destination ? [destination.lon] : []);
  const [minLat, maxLat, minLon, maxLon] = [Math.min(...lats), Math.max(...lats), Math.min(...lons), Math.max(...lons)];
  const squash = Math.cos((((minLat + maxLat) / 2) * Math.PI) / 180);
  const width = 600;
  const spanX = Math.max((maxLon - minLon) * squash, 0.5);
  const spanY = Math.max(maxLat - minLat, 0.5);
  const height = Math.round(Math.min(900, Math.max(300, (width * spanY) / spanX)));
  const pad = 24;
  const x = (lon) => pad + (((lon - minLon) * squash) / spanX) * (width - 2 * pad);
  const y = (lat) => height - pad - ((lat - minLat) / spanY) * (height - 2 * pad);
  const svg = h("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label, width: size.width || width, height: size.height || height });
  for (let i = 1; i < 6; i += 1) {
    svg.append(h("line", { x1: (width * i) / 6, x2: (width * i) / 6, y1: 0, y2: height, stroke: "#d4dde8" }));
    svg.append(h("line", { y1: (height * i) / 6, y2: (height * i) / 6, x1: 0, x2: width, stroke: "#d4dde8" }));
  }
  const order = { undefined: 0, excluded: 1, candidate: 2, chosen: 3 };
  for (const node of [...points].sort((a, b) => order[marks[a.node_id]] - order[marks[b.node_id]])) {
    const mark = marks[node.node_id];
    const cx = x(node.address.lon);
    const cy = y(node.address.lat);
    const radius = mark === "chosen" ? 9 : mark === "candidate" ? 6 : 4;
    const group = h("g", { class: `node ${mark || "plain"}`, "data-node": node.node_id });
    group.append(
      h("title", {}, `${node.node_id} (${node.type}) ${mark || ""}${node.stock != null ? ` · ATP ${node.stock}` : ""}`),
      h("circle", {
        cx, cy, r: radius, fill: NODE_COLOURS[node.type] || "#555",
        "fill-opacity": mark === "excluded" ? 0.35 : 0.9,
        stroke: mark === "chosen" ? "#111" : "#fff", "stroke-width": mark === "chosen" ? 3 : 1,
      })
    );
    if (mark === "excluded") {
      group.append(h("line", { x1: cx - 6, y1: cy - 6, x2: cx + 6, y2: cy + 6, stroke: "#b3261e", "stroke-width": 2 }));
    }
    if (mark === "chosen" || (node.stock != null && node.stock > 0 && points.length < 80)) {
      group.append(h("text", { x: cx + radius + 3, y: cy + 4, "font-size": 12, fill: "#1b1f24" }, mark === "chosen" ? node.node_id : String(node.stock)));
    }
    svg.append(group);
  }
  if (destination) {
    const dx = x(destination.lon);
    const dy = y(destination.lat);
    svg.append(
      h("g", { class: "destination" },
        h("title", {}, destination.label || "Delivery address"),
        h("rect", { x: dx - 7, y: dy - 7, width: 14, height: 14, fill: "#f6d32d", stroke: "#111", "stroke-width": 2 }))
    );
  }
  return svg;
}

export function mapLegend(extra = []) {
  return h(
    "ul",
    { class: "legend-list", "aria-label": "Legend" },
    Object.entries(NODE_COLOURS).map(([type, colour]) => {
      const swatch = h("span", { class: "swatch" });
      swatch.style.background = colour;
      return h("li", {}, swatch, type.toUpperCase() === "3PL" ? "3PL" : type);
    }),
    extra.map((text) => h("li", {}, text))
  );
}
