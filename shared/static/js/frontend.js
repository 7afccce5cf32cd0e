/* tica: start the NHS.UK frontend's components (the header's menu, the password "Show" button,
   error summaries, character counts...). Loaded as a module, so only browsers that support
   modules run it: the same ones tica.js marks with "nhsuk-frontend-supported". */
import { initAll } from "/static/nhsuk/nhsuk-frontend.min.js";

initAll();
