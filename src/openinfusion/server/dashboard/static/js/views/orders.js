// EHR orders.

import { h, replace } from "../dom.js";
import { notAvailable } from "./common.js";

export function renderOrders(root) {
  replace(root, h("h1", {}, "EHR orders"), notAvailable("EHR orders"));
}
