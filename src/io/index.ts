/** Dependency-free file formats shared by the command line and the browser page: PNG encoding and image grids. */
export { encodePng, toBytes } from './png.js';
export { GRID_GAP, GRID_BACKGROUND, gridLayout, gridPixels, imageGrid } from './grid.js';
