export * from "./irt.types";
