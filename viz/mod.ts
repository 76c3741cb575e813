/**
 * Pictures: masks and tile classes (SVG, PNG, ASCII) and line charts. Browser-safe.
 */
export { type ChartOptions, lineChart, type Series } from "./chart.ts";
export { asciiTiles, type MaskPicture, maskPng, maskSvg, reorderMask } from "./mask_picture.ts";
