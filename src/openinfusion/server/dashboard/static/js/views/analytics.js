// Safety and compliance analytics.

import { h, replace } from "../dom.js";
import { notAvailable } from "./common.js";

export function renderAnalytics(root) {
  replace(root, h("h1", {}, "Safety and compliance analytics"), notAvailable("Safety and compliance analytics"));
}
