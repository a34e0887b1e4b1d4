// Maintenance queue.

import { h, replace } from "../dom.js";
import { notAvailable } from "./common.js";

export function renderMaintenance(root) {
  replace(root, h("h1", {}, "Maintenance queue"), notAvailable("Maintenance queue"));
}
