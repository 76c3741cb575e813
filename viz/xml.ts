/** Text escaping for the SVG that viz/ writes (charts and mask pictures). */

const ENTITIES: Readonly<Record<string, string>> = {
  "<": "&lt;",
  ">": "&gt;",
  "&": "&amp;",
  '"': "&quot;",
};

/** Escapes text for XML element content and double-quoted attributes. */
export function escapeXml(s: string): string {
  return s.replace(/[<>&"]/g, (c) => ENTITIES[c]);
}
